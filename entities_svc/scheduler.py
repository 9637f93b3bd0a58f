"""The scheduler: every POLL_S, fires the schedules whose tick has come (ticks.py), each in
a transaction of its own, and wakes the sweep to publish the jobs of the runs it started
(they are owed like any start's: outbox.py). It lives in entities, beside the database its
claims are made in; any number of entities processes may run it at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bob_common import backoff
from entities_svc import schedules, ticks
from entities_svc.clock import now_ms
from entities_svc.db import DatabaseThread

log = logging.getLogger(__name__)

# How often due schedules are looked for: a tick starts at most this late (cron's
# resolution is a minute).
POLL_S = 1.0
# Schedules fired per look at most; the rest are due at the next.
FIRE_BATCH = 100
# How often claimed ticks older than schedules.TICKS_KEEP_MS are pruned.
PRUNE_EVERY_S = 3600.0


class Scheduler:
    def __init__(
        self,
        db: DatabaseThread,
        *,
        catchup_s: float,
        allowed_by_default: tuple[str, ...],
        job_due: Callable[[], None] = lambda: None,
        poll_s: float = POLL_S,
    ) -> None:
        self._db = db
        self._catchup_ms = int(catchup_s * 1000)
        self._allowed_by_default = allowed_by_default
        # Tells the sweep that jobs are owed now.
        self._job_due = job_due
        self._poll_s = poll_s
        self._stopping = asyncio.Event()
        self._pruned_at = 0.0
        # Runs started and ticks skipped since this process started (GetStats).
        self.started = 0
        self.skipped = 0

    def stop(self) -> None:
        self._stopping.set()

    async def serve(self) -> None:
        await backoff.every(
            self._poll_s,
            self._look,
            what="scheduler: looking for due schedules",
            log=log,
            stopping=self._stopping,
        )

    async def _look(self) -> None:
        await self.fire_due()
        await self._prune()

    async def fire_due(self) -> list[ticks.Fired]:
        now = now_ms()
        fired = []
        for schedule_id in await self._db.call(schedules.due, now, FIRE_BATCH):
            found = await self._db.call(
                ticks.fire, schedule_id, now, self._catchup_ms, self._allowed_by_default
            )
            if found is not None:
                fired.append(found)
                self._tell(found)
        if any(f.run_id for f in fired):
            self._job_due()
        return fired

    def _tell(self, fired: ticks.Fired) -> None:
        what = f"{fired.group}/{fired.name} schedule {fired.schedule.key}"
        if fired.skipped_before:
            log.warning(
                "%s: %d%s earlier tick(s) missed while no scheduler ran, skipped",
                what,
                fired.skipped_before,
                " or more" if fired.skipped_before >= ticks.COUNT_MISSED_MAX else "",
            )
            self.skipped += fired.skipped_before
        if fired.run_id:
            self.started += 1
            log.info("%s: tick %d started run %s", what, fired.tick_ms, fired.run_id)
        else:
            self.skipped += 1
            log.warning("%s: tick %d %s", what, fired.tick_ms, fired.outcome)

    async def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        if pruned := await self._db.call(schedules.prune, now_ms()):
            log.info("scheduler: forgot %d claimed tick(s) older than a week", pruned)
