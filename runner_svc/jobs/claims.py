"""What the runner asks entities about the runs it owns. Runs are owned in the database,
not in the queue: a claim (a compare-and-set on the run) makes a duplicate delivery
harmless, a lease renewed every heartbeat keeps the run this runner's (and, the runner's
one liveness signal, says who it is), and a release hands it back at shutdown."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from bob_common import claim_proof, rpc
from bob_pb import entities_pb2, entities_pb2_grpc
from runner_svc.errors import EntitiesRefused, EntitiesUnavailable
from runner_svc.jobs.node import node_info


@dataclass(frozen=True)
class Claim:
    claimed: bool
    # Why not, when refused.
    reason: str = ""
    # The claim's secret: every event of the attempt is signed with it (claim_proof.py).
    secret: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class Owner:
    """Where a run stands in entities, as far as its ownership goes."""

    status: int  # a messages_pb2.RunStatus
    attempt: int
    runner_id: str  # empty while pending


@dataclass(frozen=True)
class Renewal:
    # run id -> an entities_pb2.RunOrder, for each run renewed
    orders: dict[str, int]
    lease_ms: int


class RunClaims:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        runner_id: str,
        timeout_s: float,
        runner_type: str = "",
        capacity: int = 0,
    ) -> None:
        # Deadlines and run ids as bob_common.rpc gives them (with_defaults).
        self._stub = rpc.with_defaults(entities_pb2_grpc.EntitiesStub(channel), timeout_s)
        self._runner_id = runner_id
        # Said with every renewal, for the cluster info; without a type, nothing is.
        self._runner_type = runner_type
        self._capacity = capacity
        # Why the runner's engine is unusable, said with every renewal (engine_watch.py).
        self.engine_problem = ""

    async def claim(self, run_id: str, attempt: int) -> Claim:
        """Raises EntitiesUnavailable when entities cannot answer now."""
        request = entities_pb2.ClaimRunRequest(
            run_id=run_id, attempt=attempt, runner_id=self._runner_id
        )
        try:
            with _answered("ClaimRun"):
                response = await self._stub.ClaimRun(request)
        except EntitiesRefused as exc:
            # NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION...: a definite no.
            return Claim(False, str(exc))
        return Claim(response.claimed, response.reason, response.claim_secret)

    async def renew(self, runs: Sequence[tuple[str, int]]) -> Renewal:
        """Renews the leases of these (run id, attempt), none for an idle runner, and says
        what to do with each; entities records the runner as it describes itself here."""
        request = entities_pb2.RenewLeasesRequest(
            runner_id=self._runner_id,
            runs=[entities_pb2.RunAttempt(run_id=r, attempt=a) for r, a in runs],
            runner_type=self._runner_type,
            capacity=self._capacity,
            node=node_info(),
            engine_problem=self.engine_problem,
        )
        with _answered("RenewLeases"):
            response = await self._stub.RenewLeases(request)
        return Renewal({i.run_id: i.order for i in response.instructions}, response.lease_ms)

    async def release(self, run_id: str, attempt: int, reason: str) -> None:
        """Hands a claimed run back: entities queues it again as the next attempt."""
        request = entities_pb2.ReleaseRunRequest(
            run_id=run_id, attempt=attempt, runner_id=self._runner_id, reason=reason
        )
        with _answered("ReleaseRun"):
            await self._stub.ReleaseRun(request)

    async def secrets(self, run_id: str, attempt: int, claim_secret: bytes) -> dict[str, str]:
        """The values of the secrets the run uses, by secret name: entities answers only
        the runner holding the run's claim, shown by a MAC under the claim's secret.
        EntitiesRefused names what is wrong (a secret not stored, the claim not held)."""
        request = entities_pb2.GetRunSecretsRequest(
            run_id=run_id,
            attempt=attempt,
            runner_id=self._runner_id,
            claim_proof=claim_proof.secrets_proof(claim_secret, run_id, attempt),
        )
        with _answered("GetRunSecrets"):
            response = await self._stub.GetRunSecrets(request)
        return dict(response.values)

    async def owner(self, run_id: str) -> Owner | None:
        """None when entities does not know the run."""
        try:
            with _answered("GetRun"):
                run = await self._stub.GetRun(
                    entities_pb2.RunRef(run_id=run_id),
                )
        except EntitiesRefused as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return Owner(run.status, run.attempt, run.runner_id)


@contextmanager
def _answered(method: str) -> Iterator[None]:
    """Around one call of `method`: raises EntitiesUnavailable for a transient failure,
    EntitiesRefused otherwise."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() in rpc.UNDECIDED:
            raise EntitiesUnavailable(
                f"{method} failed with {exc.code().name}: {exc.details()}"
            ) from exc
        raise EntitiesRefused(exc.code(), f"{exc.code().name}: {exc.details()}") from exc
