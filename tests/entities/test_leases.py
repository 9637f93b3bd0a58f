"""Leases, lost runners and the outbox, on a real SQLite file."""

from __future__ import annotations

import pytest

from bob_common.run_states import RunStatus
from entities_svc import leases, models, outbox, run_commands, run_queries, run_start
from entities_svc.errors import FailedPrecondition
from entities_svc.leases import Order
from entities_svc.progress import apply_events
from tests.entities.support import LEASE_MS, log_event, status_event, step_event

EXPIRED = -1  # a lease that is over as soon as it is given


def lost_run(pipeline, runner_id: str = "runner-1") -> str:
    """A run claimed by a runner that never renews, with three lines and a step stored."""
    run = run_start.create_run(*pipeline)
    outbox.mark_queued([(run.id, 1)])
    assert run_commands.claim_run(run.id, 1, runner_id, EXPIRED).claimed
    apply_events(
        [
            status_event(run.id, 1, RunStatus.RUNNING),
            log_event(run.id, 2, 0, 3),
            step_event(run.id, 3, 0),
        ]
    )
    return run.id


def test_a_lost_run_is_retried_as_a_new_attempt_that_continues_its_log(pipeline):
    run_id = lost_run(pipeline)

    lost = leases.expire(LEASE_MS, max_attempts=3)

    assert lost == [leases.Lost(run_id, "runner-1", 1, 2)]
    run = run_queries.get_run(run_id)
    assert (run.status, run.attempt, run.runner_id, run.steps) == (RunStatus.PENDING, 2, "", ())
    assert run.first_line_no == 4
    assert run_queries.get_logs(run_id, 0, 10) == [
        "line 0",
        "line 1",
        "line 2",
        "[bob] runner lost: runner-1 did not renew its lease for 60 s during attempt 1; "
        "retrying as attempt 2",
    ]
    # Its job is due now, carrying where the new attempt's log starts.
    [due] = outbox.due(10)
    assert (due.id, due.attempt, due.first_line_no) == (run_id, 2, 4)
    # The lost attempt is stale: its late events and its claim are ignored.
    apply_events([log_event(run_id, 4, 3, 1)])
    assert run_queries.get_logs(run_id, 4, 10) == []
    assert not run_commands.claim_run(run_id, 1, "runner-2", LEASE_MS).claimed
    assert run_commands.claim_run(run_id, 2, "runner-2", LEASE_MS).claimed


def test_a_run_lost_max_attempts_times_fails_with_runner_lost(pipeline):
    run_id = lost_run(pipeline)
    leases.expire(LEASE_MS, max_attempts=2)
    assert run_commands.claim_run(run_id, 2, "runner-2", EXPIRED).claimed

    lost = leases.expire(LEASE_MS, max_attempts=2)

    assert lost == [leases.Lost(run_id, "runner-2", 2, 0)]
    run = run_queries.get_run(run_id)
    assert run.status is RunStatus.FAILED and run.completed_at_ms
    assert run.reason.startswith("runner lost: runner-2 did not renew its lease")
    assert run.reason.endswith("(2 of 2 attempts lost)")
    assert run_queries.get_logs(run_id, 0, 10)[-1] == "[bob] " + run.reason
    assert outbox.due(10) == []


def test_renewing_keeps_a_run_and_a_stop_requested_meanwhile_wins_over_a_retry(pipeline):
    kept, stopped = lost_run(pipeline), lost_run(pipeline)
    run_commands.stop_run(stopped)

    orders = leases.renew("runner-1", [(kept, 1), (stopped, 1)], LEASE_MS)
    assert orders == [Order.RUN, Order.STOP]
    leases.renew("runner-1", [(stopped, 1)], EXPIRED)

    lost = leases.expire(LEASE_MS, max_attempts=3)

    assert lost == [leases.Lost(stopped, "runner-1", 1, 0)]
    assert run_queries.get_run(kept).status is RunStatus.RUNNING
    run = run_queries.get_run(stopped)
    assert run.status is RunStatus.STOPPED and run.reason.startswith("stopped by request")


def test_a_runner_is_told_to_abandon_what_it_no_longer_owns(pipeline):
    run_id = lost_run(pipeline)
    leases.expire(LEASE_MS, max_attempts=3)
    run_commands.claim_run(run_id, 2, "runner-2", LEASE_MS)

    assert leases.renew("runner-1", [(run_id, 1), ("r-unknown", 1)], LEASE_MS) == [
        Order.ABANDON,
        Order.ABANDON,
    ]
    assert leases.renew("runner-2", [(run_id, 2)], LEASE_MS) == [Order.RUN]


def test_a_released_run_is_a_new_attempt_not_counted_as_lost(pipeline):
    run_id = lost_run(pipeline)
    leases.renew("runner-1", [(run_id, 1)], LEASE_MS)

    with pytest.raises(FailedPrecondition, match="not held by runner-2"):
        leases.release(run_id, 1, "runner-2", "")
    released = leases.release(run_id, 1, "runner-1", "runner runner-1 shut down")

    assert (released.status, released.attempt) == (RunStatus.PENDING, 2)
    assert run_queries.get_logs(run_id, 3, 10) == [
        "[bob] runner runner-1 shut down; retrying as attempt 2"
    ]
    # Lost once after the release: still retried with max_attempts=2, since the release
    # did not count.
    run_commands.claim_run(run_id, 2, "runner-2", EXPIRED)
    assert leases.expire(LEASE_MS, max_attempts=2)[0].retried_as == 3


def test_a_dead_lettered_job_is_queued_again_then_fails_the_run(pipeline):
    run = run_start.create_run(*pipeline)
    outbox.mark_queued([(run.id, 1)])

    assert leases.requeue_dead_job(run.id, 1, "delivered 10 times", max_attempts=2)
    assert [due.id for due in outbox.due(10)] == [run.id]
    outbox.mark_queued([(run.id, 1)])
    assert not leases.requeue_dead_job(run.id, 7, "stale attempt", max_attempts=2)
    assert leases.requeue_dead_job(run.id, 1, "delivered 10 times", max_attempts=2)

    failed = run_queries.get_run(run.id)
    assert failed.status is RunStatus.FAILED
    assert failed.reason == (
        "the job of attempt 1 was dead-lettered (delivered 10 times) (2 of 2 attempts lost)"
    )


def test_a_new_run_is_due_only_if_its_confirm_never_came(pipeline):
    confirmed, unconfirmed = run_start.create_run(*pipeline), run_start.create_run(*pipeline)
    outbox.mark_queued([(confirmed.id, 1)])

    assert outbox.due(10) == []  # the unconfirmed one is within its grace
    models.Run.update(requeue_at_ms=1).where(models.Run.id == unconfirmed.id).execute()
    assert [due.id for due in outbox.due(10)] == [unconfirmed.id]
