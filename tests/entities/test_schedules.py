"""Schedules in the database (entities_svc/schedules.py, ticks.py): a tick is claimed once,
by a unique row in the transaction of the run it starts, whoever else tries; the missed-tick
policy; and the run records which schedule and tick started it."""

from __future__ import annotations

import threading

import peewee
import pytest

from bob_common.run_states import RunStatus
from entities_svc import pipelines, run_queries, schedules, ticks
from entities_svc.db import close_database
from entities_svc.models import Run, Schedule, ScheduleTick
from tests.entities.support import PIPELINE

MINUTE = 60_000
EVERY_MINUTE = {**PIPELINE, "schedules": [{"cron": "* * * * *"}]}
CATCHUP_MS = 300_000
DEFAULT = ("docker",)


@pytest.fixture
def scheduled(database) -> int:
    """A pipeline with a per-minute schedule; the id of its schedule row."""
    pipelines.put_pipeline("dev", "cron", EVERY_MINUTE)
    return Schedule.get().id


def _next(schedule_id: int) -> int:
    return Schedule.get_by_id(schedule_id).next_at_ms


def test_a_put_keeps_each_schedule_with_its_next_tick_and_drops_removed_ones(database):
    pipelines.put_pipeline("dev", "cron", EVERY_MINUTE)
    first = Schedule.get()
    assert first.next_at_ms % MINUTE == 0 and (first.cron, first.timezone) == ("* * * * *", "UTC")

    # Kept as it was when the pipeline is put again; a new one added, then all removed.
    two = [{"cron": "* * * * *"}, {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}]
    pipelines.put_pipeline("dev", "cron", {**PIPELINE, "schedules": two})
    assert Schedule.get_by_id(first.id).next_at_ms == first.next_at_ms
    assert Schedule.select().count() == 2
    pipelines.put_pipeline("dev", "cron", PIPELINE)
    assert Schedule.select().count() == 0


def test_a_due_tick_starts_one_run_that_records_its_schedule_and_tick(scheduled):
    tick = _next(scheduled)

    fired = ticks.fire(scheduled, tick + 500, CATCHUP_MS, DEFAULT)

    assert fired is not None and fired.tick_ms == tick and fired.run_id
    run = run_queries.get_run(fired.run_id)
    assert run.status is RunStatus.PENDING
    assert run.scheduled_by == ("* * * * *", "UTC", tick)
    # Its job is owed at once: the sweep publishes it (outbox.py).
    assert 0 < Run.get(Run.id == run.id).requeue_at_ms <= tick + 500
    assert _next(scheduled) == tick + MINUTE
    # The same tick again: nothing (the schedule has moved on).
    assert ticks.fire(scheduled, tick + 900, CATCHUP_MS, DEFAULT) is None
    assert Run.select().count() == 1


def test_the_unique_tick_holds_where_the_next_tick_guard_is_bypassed(scheduled):
    """As if a second scheduler had read the schedule before the first moved it on."""
    tick = _next(scheduled)
    assert ticks.fire(scheduled, tick + 10, CATCHUP_MS, DEFAULT) is not None
    Schedule.update(next_at_ms=tick).where(Schedule.id == scheduled).execute()

    assert ticks.fire(scheduled, tick + 20, CATCHUP_MS, DEFAULT) is None

    assert Run.select().count() == 1 and ScheduleTick.select().count() == 1
    # Rolled back whole: the stale schedule was not moved by the loser either.
    assert _next(scheduled) == tick


def test_only_the_latest_missed_tick_starts_within_the_catch_up_window(scheduled):
    first = _next(scheduled)
    # Down for three ticks and 20 s: the last one starts, the two before it are skipped.
    fired = ticks.fire(scheduled, first + 2 * MINUTE + 20_000, CATCHUP_MS, DEFAULT)

    assert fired is not None and fired.run_id
    assert fired.tick_ms == first + 2 * MINUTE and fired.skipped_before == 2
    assert _next(scheduled) == first + 3 * MINUTE
    assert [t.tick_ms for t in ScheduleTick.select()] == [first + 2 * MINUTE]


def test_a_week_down_starts_the_latest_tick_and_counts_what_it_skipped_within_bounds(scheduled):
    first = _next(scheduled)
    week = 7 * 24 * 60 * MINUTE

    fired = ticks.fire(scheduled, first + week + 1_000, CATCHUP_MS, DEFAULT)

    assert fired is not None and fired.run_id and fired.tick_ms == first + week
    assert fired.skipped_before == ticks.COUNT_MISSED_MAX  # "100 or more", not 10080
    assert _next(scheduled) == first + week + MINUTE


def test_a_missed_tick_older_than_the_window_is_skipped_once(scheduled):
    first = _next(scheduled)

    fired = ticks.fire(scheduled, first + 40_000, 30_000, DEFAULT)

    assert fired is not None and not fired.run_id
    assert fired.outcome.startswith("skipped: missed by 40 s")
    assert Run.select().count() == 0
    (state,) = schedules.states("dev", "cron")
    assert (state.last_tick_ms, state.last_run_id) == (first, "")
    assert state.last_outcome == fired.outcome and state.next_ms == first + MINUTE


def test_a_tick_of_a_paused_pipeline_is_claimed_and_starts_nothing(scheduled):
    pipelines.set_paused("dev", "cron", True)
    tick = _next(scheduled)

    fired = ticks.fire(scheduled, tick, CATCHUP_MS, DEFAULT)

    assert fired is not None and fired.outcome.startswith("refused: Pipeline is paused")
    assert Run.select().count() == 0 and ScheduleTick.select().count() == 1


def test_deleting_the_pipeline_deletes_its_schedules_and_ticks(scheduled):
    ticks.fire(scheduled, _next(scheduled), CATCHUP_MS, DEFAULT)
    Run.update(status=int(RunStatus.PASSED)).execute()
    pipelines.delete_pipeline("dev", "cron")
    assert Schedule.select().count() == ScheduleTick.select().count() == 0


def test_two_schedulers_on_one_database_start_a_tick_once(db_url, scheduled):
    """Two connections to one database (as two entities processes have), firing the same
    tick at the same moment, again and again: one run per tick, every time. On SQLite the
    loser may also fail on its stale snapshot (busy); on PostgreSQL its compare-and-set
    waits for the winner's commit and then finds nothing due."""
    database = Schedule._meta.database

    def scheduler(barrier: threading.Barrier, tick: int, results: list[object]) -> None:
        # peewee gives each thread a connection of its own.
        barrier.wait()
        try:
            results.append(ticks.fire(scheduled, tick + 100, CATCHUP_MS, DEFAULT))
        except peewee.OperationalError as exc:  # SQLite's busy snapshot: lost the race too
            results.append(exc)
        finally:
            close_database(database)

    rounds = 20
    outcomes: list[str] = []
    for done in range(rounds):
        tick = _next(scheduled)
        barrier = threading.Barrier(2)
        results: list[object] = []
        threads = [
            threading.Thread(target=scheduler, args=(barrier, tick, results)) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        started = [r for r in results if isinstance(r, ticks.Fired) and r.run_id]
        assert len(started) == 1, results
        assert Run.select().count() == done + 1
        outcomes += [type(r).__name__ for r in results if r is not started[0]]
    assert ScheduleTick.select().count() == rounds
    assert len({t.tick_ms for t in ScheduleTick.select()}) == rounds
    # How the losers lost: None (the schedule had moved on) or SQLite's busy snapshot.
    kind = db_url.split(":", 1)[0]
    print(f"schedules[claim race] {kind}: losers of {rounds} races: {sorted(set(outcomes))}")
