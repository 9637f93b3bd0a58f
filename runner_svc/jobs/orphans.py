"""The orphan sweep: at start and every BOB_RUNNER_ORPHAN_SWEEP_S, the build containers on
this host that no runner will ever remove are removed.

A runner removes its run's container itself, and its own leftovers at start; what that
leaves is the container of a runner that was killed and never came back, or came back
under another id. Entities knows whose each run is: a container not executing here is an
orphan when its run is unknown, has ended, has moved on to another attempt, or belongs to
this very runner (which does not execute it, so it is from an earlier life). A live run of
another runner keeps its container. While entities cannot answer, nothing is removed.
"""

from __future__ import annotations

import asyncio
import logging

from bob_common.run_states import TERMINAL
from runner_svc.errors import EntitiesRefused, EntitiesUnavailable
from runner_svc.executors import Executor
from runner_svc.jobs.active import RunsHere
from runner_svc.jobs.claims import RunClaims
from runner_svc.reporting.runlog import run_logger

log = logging.getLogger(__name__)


class OrphanSweeper:
    def __init__(
        self,
        executor: Executor,
        claims: RunClaims,
        *,
        runner_id: str,
        runs: RunsHere,
        interval_s: float,
    ) -> None:
        self._executor = executor
        self._claims = claims
        self._runner_id = runner_id
        self._runs = runs
        self._interval_s = interval_s

    async def serve(self, until: asyncio.Event) -> None:
        """Sweeps now, then every interval, until `until` is set."""
        while True:
            await self.sweep()
            try:
                await asyncio.wait_for(until.wait(), self._interval_s)
                return
            except TimeoutError:
                pass

    async def sweep(self) -> int:
        """Removes the orphans found now and returns how many. Never raises."""
        try:
            removed = await self._executor.sweep(self._orphaned)
        except EntitiesUnavailable as exc:
            log.info("orphan sweep skipped: %s", exc)
            return 0
        except Exception:  # noqa: BLE001 - a sweep is never worth the runner
            log.exception("orphan sweep failed")
            return 0
        if removed:
            log.warning("removed %d orphan workspace(s)", removed)
        return removed

    async def _orphaned(self, run_id: str, attempt: int | None) -> bool:
        # Read after the executor listed its workspaces: a run claimed later has none in
        # that list, and one executing here keeps its workspace until its own end.
        if any(r == run_id and attempt in (None, a) for r, a in self._runs.executing()):
            return False
        try:
            owner = await self._claims.owner(run_id)
        except EntitiesRefused as exc:
            run_logger(log, run_id).info("leaving its container alone: %s", exc)
            return False
        return (
            owner is None
            or owner.status in TERMINAL
            or (attempt is not None and owner.attempt != attempt)
            or owner.runner_id == self._runner_id
        )
