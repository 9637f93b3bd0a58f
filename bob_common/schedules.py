"""A pipeline's schedules (ours, issue 11): cron expressions, each in a time zone, and
the times they fire. The cron arithmetic is croniter's and the zones are the IANA
database's (zoneinfo); nothing here is hand-written calendar code.

Times are milliseconds since the Unix epoch, as everywhere in entities. Daylight saving
time is handled as croniter handles it for a zone-aware start: a wall-clock time that a
spring-forward gap skips fires at the first instant after the gap (02:30 on the night
Berlin goes from 02:00 to 03:00 fires at 03:00), and a time within the hour repeated when
clocks go back fires at each of its two occurrences (they are distinct instants, so each is
a tick of its own).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter

DEFAULT_TIMEZONE = "UTC"
# Five fields (minute hour day-of-month month day-of-week) or an @-alias (@hourly, ...):
# croniter also takes a sixth and seventh (seconds, years), which no CI schedule needs and
# which read differently in other cron dialects, so they are refused.
FIELDS = 5
CRON_MAX = 200


@dataclass(frozen=True, order=True)
class Schedule:
    cron: str
    timezone: str = DEFAULT_TIMEZONE

    @property
    def key(self) -> str:
        """How runs and ticks name the schedule: its expression and zone."""
        return f"{self.cron} ({self.timezone})"


def of_definition(definition: Mapping[str, Any]) -> list[Schedule]:
    """The schedules of a pipeline definition (bob.v1.Pipeline as a dict), in order; a
    missing timezone is UTC."""
    return [
        Schedule(item.get("cron", ""), item.get("timezone") or DEFAULT_TIMEZONE)
        for item in definition.get("schedules") or ()
    ]


def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def zone_problem(name: str) -> str:
    """Why `name` is not an IANA time zone, or ""."""
    try:
        _zone(name)
    except Exception:  # noqa: BLE001 - whatever zoneinfo makes of it, it is no zone
        return f"time zone {name!r} is not an IANA time zone name (e.g. 'Europe/Berlin', 'UTC')"
    return ""


def cron_problem(cron: str) -> str:
    """Why `cron` is not a five-field cron expression that fires, or ""."""
    text = cron.strip()
    if not text or len(text) > CRON_MAX:
        return f"cron expression {cron!r} must have 1 to {CRON_MAX} characters"
    if not text.startswith("@") and len(text.split()) != FIELDS:
        return (
            f"cron expression {cron!r} must have 5 fields "
            "(minute hour day-of-month month day-of-week), e.g. '*/15 * * * *'"
        )
    try:
        croniter(text, datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        return f"cron expression {cron!r} never fires"
    except Exception as exc:  # noqa: BLE001 - croniter raises more than its own errors
        return f"cron expression {cron!r} is not valid: {exc}"
    return ""


def problem(schedules: Sequence[Schedule]) -> str:
    """Why the list of schedules cannot be kept, or "": each a valid expression in a known
    zone, and none twice (a tick is claimed by its schedule's expression and zone)."""
    seen: set[Schedule] = set()
    for number, schedule in enumerate(schedules, start=1):
        if why := cron_problem(schedule.cron) or zone_problem(schedule.timezone):
            return f"schedule {number}: {why}"
        if schedule in seen:
            return f"schedule {number}: {schedule.key} is given twice"
        seen.add(schedule)
    return ""


def _at(ms: int, zone: str) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(_zone(zone))


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def next_after(schedule: Schedule, after_ms: int) -> int:
    """The first tick strictly after `after_ms`."""
    start = _at(after_ms, schedule.timezone)
    return _ms(croniter(schedule.cron.strip(), start).get_next(datetime))


def latest_at_or_before(schedule: Schedule, at_ms: int) -> int:
    """The last tick at or before `at_ms`. (croniter's get_prev answers the tick strictly
    before its start, so the start is a microsecond later.)"""
    start = _at(at_ms, schedule.timezone) + timedelta(microseconds=1)
    return _ms(croniter(schedule.cron.strip(), start).get_prev(datetime))
