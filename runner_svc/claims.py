"""Claiming a run in entities before executing it: the queue delivers at least once, so
the claim (a compare-and-set on the run) is what makes a duplicate delivery harmless."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from bob_pb import entities_pb2, entities_pb2_grpc
from runner_svc.errors import EntitiesUnavailable

# Answers that say nothing about the run, only that entities could not decide: try later.
_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


@dataclass(frozen=True)
class Claim:
    claimed: bool
    # Why not, when refused.
    reason: str = ""


class RunClaims:
    def __init__(self, channel: grpc.aio.Channel, *, runner_id: str, timeout_s: float) -> None:
        self._stub = entities_pb2_grpc.EntitiesStub(channel)
        self._runner_id = runner_id
        self._timeout_s = timeout_s

    async def claim(self, run_id: str, attempt: int) -> Claim:
        """Raises EntitiesUnavailable when entities cannot answer now."""
        request = entities_pb2.ClaimRunRequest(
            run_id=run_id, attempt=attempt, runner_id=self._runner_id
        )
        try:
            response = await self._stub.ClaimRun(
                request, timeout=self._timeout_s, metadata=(("bob-run-id", run_id),)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT:
                raise EntitiesUnavailable(
                    f"ClaimRun failed with {exc.code().name}: {exc.details()}"
                ) from exc
            # NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION...: a definite no.
            return Claim(False, f"{exc.code().name}: {exc.details()}")
        return Claim(response.claimed, response.reason)
