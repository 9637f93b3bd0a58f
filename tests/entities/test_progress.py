from __future__ import annotations

import pytest

from bob_common.run_states import TERMINAL, Order, RunStatus
from entities_svc import leases, run_commands, run_queries, run_start
from entities_svc.progress import Outcome, apply_events
from tests.entities.support import LEASE_MS, log_event, status_event, step_event

S = RunStatus


@pytest.fixture
def claimed(pipeline) -> str:
    run_id = run_start.create_run(*pipeline).id
    assert run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS).claimed
    return run_id


def test_status_steps_and_logs_apply_in_seq_order(claimed):
    events = [
        status_event(claimed, 1, S.RUNNING),
        log_event(claimed, 2, 0, 3),
        step_event(claimed, 3, 0),
        step_event(claimed, 4, 1, exit_code=2),
        status_event(claimed, 5, S.FAILED, "step 1 exited with 2"),
    ]

    outcome = apply_events(list(reversed(events)))

    assert outcome == Outcome(applied=5)
    run = run_queries.get_run(claimed)
    assert (run.status, run.reason) == (S.FAILED, "step 1 exited with 2")
    assert run.completed_at_ms == 5_000
    assert [(s.index, s.exit_code, s.duration_ms) for s in run.steps] == [(0, 0, 10), (1, 2, 20)]
    assert run_queries.get_logs(claimed, 0, 10) == ["line 0", "line 1", "line 2"]


def test_duplicate_events_are_skipped(claimed):
    apply_events([status_event(claimed, 1, S.RUNNING), log_event(claimed, 2, 0, 5)])

    outcome = apply_events(
        [
            status_event(claimed, 1, S.RUNNING),
            log_event(claimed, 2, 0, 5),
            log_event(claimed, 3, 5, 1),
        ]
    )

    assert outcome == Outcome(applied=1, duplicate=2)
    assert run_queries.get_logs(claimed, 0, 100) == [f"line {n}" for n in range(6)]


def test_re_applied_log_lines_are_not_duplicated(claimed):
    # The same lines under a new seq (e.g. a runner re-sending a batch) insert nothing.
    apply_events([log_event(claimed, 1, 0, 5), log_event(claimed, 2, 3, 4)])

    assert run_queries.get_logs(claimed, 0, 100) == [f"line {n}" for n in range(7)]


def test_events_of_another_attempt_are_ignored(claimed):
    outcome = apply_events([status_event(claimed, 1, S.RUNNING, attempt=2)])

    assert outcome == Outcome(stale_attempt=1)
    assert run_queries.get_run(claimed).status is S.INITIALIZING


def test_events_of_an_unknown_run_are_ignored_without_failing_the_batch(claimed):
    outcome = apply_events(
        [status_event("r-gone", 1, S.RUNNING), status_event(claimed, 1, S.RUNNING)]
    )

    assert outcome == Outcome(applied=1, unknown_run=1)
    assert run_queries.get_run(claimed).status is S.RUNNING


def test_illegal_transition_is_ignored_and_later_events_still_apply(claimed):
    outcome = apply_events(
        [
            status_event(claimed, 1, S.PASSED),  # INITIALIZING -> PASSED is not allowed
            status_event(claimed, 2, S.RUNNING),
        ]
    )

    assert outcome.applied == 2
    assert run_queries.get_run(claimed).status is S.RUNNING


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_a_terminal_status_never_changes_again(claimed, terminal):
    apply_events([status_event(claimed, 1, S.RUNNING), status_event(claimed, 2, terminal, "x")])
    finished = run_queries.get_run(claimed)

    apply_events(
        [status_event(claimed, seq, status, "later") for seq, status in enumerate(S, start=3)]
    )

    assert run_queries.get_run(claimed) == finished
    assert finished.status is terminal and finished.completed_at_ms == 2_000


def test_pause_and_resume_round_trip(claimed):
    apply_events(
        [
            status_event(claimed, 1, S.RUNNING),
            status_event(claimed, 2, S.PAUSED),
            status_event(claimed, 3, S.RUNNING),
        ]
    )

    run = run_queries.get_run(claimed)
    assert run.status is S.RUNNING and run.completed_at_ms == 0


def test_a_runner_that_never_reports_initialized_goes_straight_to_running(claimed):
    apply_events([status_event(claimed, 1, S.RUNNING)])

    run = run_queries.get_run(claimed)
    assert run.status is S.RUNNING
    assert (run.initialized_at_ms, run.started_at_ms) == (0, 1_000)


def test_an_initialized_run_is_claimed_like_an_initializing_one(claimed):
    # Given a run whose container is ready
    apply_events([status_event(claimed, 1, S.INITIALIZED)])

    # When it is paused, then stopped
    paused = run_commands.set_paused(claimed, True)
    stop = run_commands.stop_run(claimed)

    # Then its runner is told, by broadcast and lease renewal, as for INITIALIZING
    assert paused.status is S.INITIALIZED and stop.broadcast
    assert leases.renew("runner-1", [(claimed, 1)], LEASE_MS) == [Order.STOP]
    assert run_queries.count_by_status() == {S.INITIALIZED: 1}
    apply_events([status_event(claimed, 2, S.STOPPED, "stopped by request")])
    assert run_queries.get_run(claimed).status is S.STOPPED


def test_an_initialized_run_may_fail_and_never_goes_back(claimed):
    apply_events(
        [
            status_event(claimed, 1, S.INITIALIZED),
            status_event(claimed, 2, S.INITIALIZING),  # backwards: ignored
            status_event(claimed, 3, S.FAILED, "image not found"),
        ]
    )

    run = run_queries.get_run(claimed)
    assert (run.status, run.reason, run.started_at_ms) == (S.FAILED, "image not found", 0)
