"""Lease renewal: every heartbeat, the runner tells entities (over gRPC) who it is and
which runs it executes, which keeps them its own, and does what entities answers for each.

It is also how a command reaches a run when the control fanout could not: a runner cut off
from the broker has lost its exclusive control queue, and the stop or pause sent then with
it, but entities still holds the wish and answers it here within a heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from operator import methodcaller

from bob_common import run_states
from bob_common.run_states import RunStatus
from bob_pb import entities_pb2
from runner_svc.errors import RunnerError
from runner_svc.jobs.active import RunsHere
from runner_svc.jobs.claims import RunClaims
from runner_svc.reporting.runlog import run_logger
from runner_svc.run import Run

log = logging.getLogger(__name__)

Order = Callable[[Run], Awaitable[None]]


# Each order is repeated every heartbeat until it is moot: acting on it must be idempotent.
async def _go_on(run: Run) -> None:
    if run.status == RunStatus.PAUSED:
        run_logger(log, run.spec.run_id).info("lease: resuming")
        await run.resume()


async def _hold(run: Run) -> None:
    if run.status == RunStatus.RUNNING:
        run_logger(log, run.spec.run_id).info("lease: pausing")
        await run.pause()


ORDERS: dict[int, Order] = {
    run_states.Order.RUN: _go_on,
    run_states.Order.PAUSE: _hold,
    run_states.Order.STOP: methodcaller("stop"),
    run_states.Order.ABANDON: methodcaller("abandon"),
}
# Orders that state a wish a newer control command may have changed meanwhile.
_REVERSIBLE = {run_states.Order.RUN, run_states.Order.PAUSE}


class Leases:
    def __init__(self, claims: RunClaims, runs: RunsHere) -> None:
        self._claims = claims
        self._runs = runs

    async def renew(self) -> None:
        """Renews the leases of the runs executing here and applies the orders. A failure
        is logged and left to the next heartbeat: it never touches the runs."""
        runs = self._runs.executing()
        sent = {run_id: self._commands(run_id) for run_id, _ in runs}
        try:
            renewal = await self._claims.renew(runs)
        except RunnerError as exc:
            log.warning("could not renew the leases of %d run(s): %s", len(runs), exc)
            return
        await asyncio.gather(
            *(
                self._apply(run_id, attempt, renewal.orders.get(run_id), sent[run_id])
                for run_id, attempt in runs
            )
        )

    def _commands(self, run_id: str) -> int:
        run = self._runs.run_of(run_id)
        return run.commands if run else 0

    async def _apply(self, run_id: str, attempt: int, order: int | None, sent: int) -> None:
        rlog = run_logger(log, run_id)
        run = self._runs.run_of(run_id)
        if run is None or run.spec.attempt != attempt or order is None:
            return  # ended meanwhile, or entities said nothing of it
        if order in _REVERSIBLE and run.commands != sent:
            # E.g. a PAUSE from the fanout while the answer, from before it, was on its way.
            rlog.debug("a newer command stands over the lease's answer")
            return
        action = ORDERS.get(order)
        if action is None:
            rlog.warning("ignoring unknown lease order %d", order)
            return
        try:
            await action(run)
        except Exception:  # noqa: BLE001 - one run's trouble is not the others'
            rlog.exception("could not apply %s", entities_pb2.RunOrder.Name(order))
