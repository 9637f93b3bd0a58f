"""Pipelines' schedules in the database: kept in step with each definition (sync, in the
pipeline's own transaction), with the next tick of each; ticks.py claims and fires them.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from bob_common import schedules as cron
from bob_common.schedules import Schedule as Spec
from entities_svc.models import Schedule, ScheduleTick

# Claimed ticks are kept this long (the latest of each schedule is shown by its view).
TICKS_KEEP_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class State:
    schedule: Spec
    next_ms: int
    last_tick_ms: int = 0
    last_run_id: str = ""
    last_outcome: str = ""


def _of_pipeline(group: str, name: str) -> peewee.Expression:
    return (Schedule.group == group) & (Schedule.name == name)


def sync(group: str, name: str, definition: dict[str, object], now_ms: int) -> None:
    """Makes the pipeline's schedule rows those of its definition, in the caller's
    transaction: a schedule kept from the previous definition keeps its next tick, a new
    one fires first at its next tick after now, a removed one goes."""
    wanted = cron.of_definition(definition)
    rows = {Spec(r.cron, r.timezone): r for r in Schedule.select().where(_of_pipeline(group, name))}
    for spec, row in rows.items():
        if spec not in wanted:
            row.delete_instance()
    for spec in wanted:
        if spec not in rows:
            Schedule.create(
                group=group,
                name=name,
                cron=spec.cron,
                timezone=spec.timezone,
                next_at_ms=cron.next_after(spec, now_ms),
            )


def drop(group: str, name: str) -> None:
    """The pipeline is deleted: its schedules and their ticks go with it."""
    Schedule.delete().where(_of_pipeline(group, name)).execute()
    ScheduleTick.delete().where(
        (ScheduleTick.group == group) & (ScheduleTick.name == name)
    ).execute()


def due(now_ms: int, limit: int) -> list[int]:
    """Ids of the schedules whose next tick has come, earliest first."""
    query = (
        Schedule.select(Schedule.id)
        .where(Schedule.next_at_ms <= now_ms)
        .order_by(Schedule.next_at_ms)
        .limit(limit)
        .tuples()
    )
    return [schedule_id for (schedule_id,) in query]


def states(group: str, name: str) -> list[State]:
    """The pipeline's schedules with their next tick and their last claimed one, in the
    order they were added."""
    found = []
    rows = Schedule.select().where(_of_pipeline(group, name)).order_by(Schedule.id)
    for row in rows:
        last = (
            ScheduleTick.select()
            .where(
                (ScheduleTick.group == group)
                & (ScheduleTick.name == name)
                & (ScheduleTick.cron == row.cron)
                & (ScheduleTick.timezone == row.timezone)
            )
            .order_by(ScheduleTick.tick_ms.desc())
            .first()
        )
        found.append(
            State(
                Spec(row.cron, row.timezone),
                row.next_at_ms,
                last.tick_ms if last else 0,
                last.run_id if last else "",
                last.outcome if last else "",
            )
        )
    return found


def prune(now_ms: int) -> int:
    """Forgets ticks claimed more than TICKS_KEEP_MS ago; how many."""
    return int(
        ScheduleTick.delete().where(ScheduleTick.claimed_at_ms < now_ms - TICKS_KEEP_MS).execute()
    )
