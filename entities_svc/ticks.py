"""Firing a schedule's tick: claim it and start its run, in one transaction.

Exactly one start per tick, whatever the number of entities processes on the database and
across restarts: a tick is claimed by inserting its ScheduleTick row, unique on (pipeline,
schedule, tick), in the transaction that also records the run it starts (PENDING, its job
owed: outbox.py publishes it). A second scheduler that reaches the same tick fails on the
unique key, and its whole transaction (run included) rolls back; a process that dies
before committing leaves nothing, and the tick is still due when one comes back.

Missed ticks (nothing was running at the time): when a schedule is found due, only its
most recent tick may still start, and only when it is at most BOB_SCHEDULE_CATCHUP_S old;
older ticks are skipped and logged. A tick too old is claimed as skipped, so the decision
is made once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import peewee

from bob_common import schedules as cron
from bob_common.schedules import Schedule as Spec
from entities_svc import journal, run_start
from entities_svc.errors import FailedPrecondition, Invalid, NotFound
from entities_svc.models import Schedule, ScheduleTick, database

log = logging.getLogger(__name__)

# Missed ticks counted at most when logging how many were skipped: counting is croniter
# arithmetic (~0.3 ms a tick) inside the claim's transaction, on the database thread.
COUNT_MISSED_MAX = 100


@dataclass(frozen=True)
class Fired:
    group: str
    name: str
    schedule: Spec
    tick_ms: int
    # The run started, or "" (outcome says why not).
    run_id: str
    outcome: str
    # Older ticks missed before this one, skipped (at most COUNT_MISSED_MAX counted).
    skipped_before: int = 0


def _missed(spec: Spec, first_ms: int, latest_ms: int) -> int:
    """Ticks from first_ms (a tick) up to, not including, latest_ms."""
    count, tick = 0, first_ms
    while tick < latest_ms and count < COUNT_MISSED_MAX:
        count += 1
        tick = cron.next_after(spec, tick)
    return count


def fire(
    schedule_id: int,
    now_ms: int,
    catchup_ms: int,
    allowed_by_default: tuple[str, ...],
) -> Fired | None:
    """Claims the schedule's latest tick at or before now and starts its run (or records
    why it starts none), and moves the schedule to its next tick; all in one transaction.
    None when there is nothing to do: the schedule is gone, not due, or another scheduler
    claimed the tick first."""
    try:
        with database.atomic():
            return _fire(schedule_id, now_ms, catchup_ms, allowed_by_default)
    except peewee.IntegrityError:
        # The unique tick: another scheduler has claimed it (and started its run).
        log.info("schedule %d: tick already claimed by another scheduler", schedule_id)
        return None


def _fire(
    schedule_id: int, now_ms: int, catchup_ms: int, allowed_by_default: tuple[str, ...]
) -> Fired | None:
    row = Schedule.get_or_none(Schedule.id == schedule_id)
    if row is None or row.next_at_ms > now_ms:
        return None
    spec = Spec(row.cron, row.timezone)
    tick = max(cron.latest_at_or_before(spec, now_ms), row.next_at_ms)
    # Compare-and-set on the next tick: the cheap guard; the unique tick row below is the
    # one that holds across processes and databases.
    moved = (
        Schedule.update(next_at_ms=cron.next_after(spec, now_ms))
        .where((Schedule.id == row.id) & (Schedule.next_at_ms == row.next_at_ms))
        .execute()
    )
    if not moved:
        return None
    claim = ScheduleTick.create(
        group=row.group,
        name=row.name,
        cron=row.cron,
        timezone=row.timezone,
        tick_ms=tick,
        claimed_at_ms=now_ms,
    )
    late_ms = now_ms - tick
    run_id = ""
    if late_ms > catchup_ms:
        outcome = (
            f"skipped: missed by {late_ms / 1000:.0f} s, more than the catch-up window "
            f"of {catchup_ms / 1000:.0f} s (BOB_SCHEDULE_CATCHUP_S)"
        )
    else:
        try:
            with database.atomic():  # a savepoint: a refused start leaves the claim
                info = run_start.create_run(
                    row.group,
                    row.name,
                    allowed_by_default=allowed_by_default,
                    scheduled_by=(row.cron, row.timezone, tick),
                )
        except (FailedPrecondition, Invalid, NotFound) as exc:
            outcome = f"refused: {exc}"
        else:
            run_id, outcome = info.id, f"started {info.id}"
    claim.run_id, claim.outcome = run_id, outcome
    claim.save()
    if not run_id:
        journal.append(
            "Pipeline",
            "ScheduleSkipped",
            f"Pipeline {row.group}/{row.name} schedule {spec.key} tick "
            f"{_iso(tick)} started no run: {outcome}",
            journal.WARNING,
            group=row.group,
            name=row.name,
        )
    return Fired(
        row.group,
        row.name,
        spec,
        tick,
        run_id,
        outcome,
        skipped_before=_missed(spec, row.next_at_ms, tick),
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")
