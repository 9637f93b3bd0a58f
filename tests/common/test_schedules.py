"""Schedules' pure logic (bob_common/schedules.py): what a put refuses, and when ticks are,
daylight saving time included (croniter's rules, as the README documents them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bob_common import pipeline_rules, schedules
from bob_common.schedules import Schedule


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(timespec="seconds")


@pytest.mark.parametrize(
    ("cron", "zone", "says"),
    [
        ("61 * * * *", "UTC", "'61 * * * *' is not valid"),
        ("* * * *", "UTC", "must have 5 fields"),
        ("* * * * * *", "UTC", "must have 5 fields"),
        ("0 0 31 2 *", "UTC", "never fires"),
        ("@sometimes", "UTC", "is not valid"),
        ("* * * * *", "Mars/Olympus", "'Mars/Olympus' is not an IANA time zone"),
        ("* * * * *", "../../etc/passwd", "is not an IANA time zone"),
    ],
)
def test_a_bad_expression_or_zone_is_named(cron, zone, says):
    definition = {
        "image": "i",
        "steps": [{"cmd": "x"}],
        "schedules": [{"cron": cron, "timezone": zone}],
    }
    problem = pipeline_rules.problem(definition, pipeline_rules.STORE)
    assert problem.startswith("schedule 1: ") and says in problem, problem


def test_good_schedules_pass_and_a_repeated_one_does_not():
    good = [Schedule("*/5 * * * *"), Schedule("@daily", "Europe/Berlin"), Schedule("0 3 * * 1-5")]
    assert schedules.problem(good) == ""
    assert "given twice" in schedules.problem([*good, Schedule("@daily", "Europe/Berlin")])


def test_a_missing_timezone_is_utc():
    assert schedules.of_definition({"schedules": [{"cron": "@hourly"}]}) == [
        Schedule("@hourly", "UTC")
    ]


def test_ticks_of_a_minute_schedule():
    every = Schedule("* * * * *")
    assert (
        iso(schedules.next_after(every, ms("2026-05-01T12:00:00+00:00")))
        == "2026-05-01T12:01:00+00:00"
    )
    assert (
        iso(schedules.next_after(every, ms("2026-05-01T12:00:30+00:00")))
        == "2026-05-01T12:01:00+00:00"
    )
    # A tick is its own latest.
    at = ms("2026-05-01T12:00:00+00:00")
    assert schedules.latest_at_or_before(every, at) == at
    assert schedules.latest_at_or_before(every, at + 59_999) == at


def test_a_zone_moves_the_ticks():
    three = schedules.next_after(
        Schedule("0 3 * * *", "Asia/Tokyo"), ms("2026-05-01T00:00:00+00:00")
    )
    assert iso(three) == "2026-05-01T18:00:00+00:00"  # 03:00 in Tokyo is 18:00 UTC the day before


def test_a_time_skipped_by_spring_forward_fires_after_the_gap():
    # Berlin goes from 02:00 to 03:00 on 2026-03-29: 02:30 does not exist that night.
    tick = schedules.next_after(
        Schedule("30 2 * * *", "Europe/Berlin"), ms("2026-03-28T12:00:00+00:00")
    )
    assert iso(tick) == "2026-03-29T01:00:00+00:00"  # 03:00 CEST


def test_a_time_in_the_repeated_hour_fires_at_both_occurrences():
    # Berlin goes from 03:00 back to 02:00 on 2026-10-25: 02:30 happens twice.
    spec = Schedule("30 2 * * *", "Europe/Berlin")
    first = schedules.next_after(spec, ms("2026-10-24T12:00:00+00:00"))
    second = schedules.next_after(spec, first)
    assert (iso(first), iso(second)) == ("2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+00:00")
