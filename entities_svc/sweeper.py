"""The sweep, every BOB_SWEEP_S: marks confirmed jobs queued, turns runs whose lease
expired into new attempts (or failures), publishes the jobs and controls still owed, and
prunes the event journal.

Nothing here is urgent to the millisecond, and everything is idempotent: a sweep that
fails half-way is simply done again next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from bob_common.broker_link import QueueFull, QueueUnavailable
from bob_common.config import EntitiesSettings
from entities_svc import journal, leases, outbox
from entities_svc.clock import now_ms
from entities_svc.controls import ControlSender
from entities_svc.db import DatabaseThread
from entities_svc.job_queue import JobQueue, job_of

log = logging.getLogger(__name__)

# Jobs published per sweep at most; the rest wait for the next one.
PUBLISH_BATCH = 500
# Journal events pruned per transaction, and transactions per sweep at most: other calls
# get the database thread between batches, and what is left waits for the next sweep.
PRUNE_BATCH = 1000
PRUNE_BATCHES = 10


@dataclass
class SweepOutcome:
    lost: list[leases.Lost] = field(default_factory=list)
    published: int = 0
    # Controls broadcast that an rpc could not send.
    broadcast: int = 0
    pruned: int = 0


class Sweeper:
    def __init__(
        self,
        db: DatabaseThread,
        jobs: JobQueue,
        controls: ControlSender,
        settings: EntitiesSettings,
    ) -> None:
        self._db = db
        self._jobs = jobs
        self._controls = controls
        self._lease_ms = int(settings.lease_s * 1000)
        self._max_attempts = settings.max_attempts
        self._interval_s = settings.sweep_s
        self._events_keep = settings.events_keep
        # Leases are only judged once runners have had a whole lease to renew with this
        # process: while entities was down, nobody could renew.
        self._judge_after = time.monotonic() + settings.lease_s
        self._wake = asyncio.Event()
        self._stopped = False

    def wake(self) -> None:
        """Sweep now, e.g. because a run was handed back and its new job is due."""
        self._wake.set()

    def stop(self) -> None:
        """No sweep after the one under way, if any."""
        self._stopped = True
        self._wake.set()

    async def serve(self) -> None:
        while not self._stopped:
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - the next sweep tries again
                log.exception("sweep failed")
            self._wake.clear()
            if not self._stopped:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)

    async def sweep(self) -> SweepOutcome:
        outcome = SweepOutcome()
        await self._mark_queued()
        if time.monotonic() >= self._judge_after:
            outcome.lost = await self._db.call(leases.expire, self._lease_ms, self._max_attempts)
        outcome.published = await self._publish_due()
        await self._mark_queued()
        outcome.broadcast = await self._controls.send_owed()
        outcome.pruned = await self._prune_journal()
        if outcome.lost or outcome.published or outcome.broadcast:
            log.info(
                "sweep: %d run(s) lost, %d job(s) queued, %d control(s) broadcast",
                len(outcome.lost),
                outcome.published,
                outcome.broadcast,
            )
        return outcome

    async def _prune_journal(self) -> int:
        pruned = 0
        for _ in range(PRUNE_BATCHES):
            deleted = await self._db.call(journal.prune, now_ms(), self._events_keep, PRUNE_BATCH)
            pruned += deleted
            if deleted < PRUNE_BATCH:
                break
        return pruned

    async def _mark_queued(self) -> None:
        confirmed = self._jobs.take_confirmed()
        if not confirmed:
            return
        try:
            await self._db.call(outbox.mark_queued, confirmed)
        except Exception:
            # Not marked: those jobs would be published again, which is harmless.
            log.exception("could not mark %d job(s) queued", len(confirmed))

    async def _publish_due(self) -> int:
        if not self._jobs.connected:
            return 0
        due = await self._db.call(outbox.due, PUBLISH_BATCH)
        full: set[str] = set()
        published = 0
        for info in due:
            if info.runner_type in full:
                continue
            try:
                await self._jobs.publish(job_of(info))
            except QueueFull:
                # Waits for room: the run stays PENDING and due.
                full.add(info.runner_type)
                log.warning(
                    "job queue of %s runners is full; run %s waits", info.runner_type, info.id
                )
            except QueueUnavailable as exc:
                log.warning("cannot queue jobs now (%s); next sweep", exc)
                break
            else:
                published += 1
        return published
