"""The event journal (Bob's GET /events): what is appended with each change, and how it
is read and pruned."""

from __future__ import annotations

import pytest

from bob_common.run_states import RunStatus
from entities_svc import journal, leases, pipelines, run_commands, run_queries, run_start
from entities_svc.errors import FailedPrecondition, Invalid
from entities_svc.models import ClusterEvent
from entities_svc.progress import apply_events
from tests.entities.support import LEASE_MS, PIPELINE, status_event

S = RunStatus


def events_since(after_id: int = 0) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in journal.read_after(after_id, 1000)]


def last_id() -> int:
    found = journal.read_after(0, journal.PAGE_MAX)
    return found[-1].id if found else 0


def test_a_pipelines_life_is_journaled_in_bobs_words(database):
    pipelines.put_pipeline("dev", "app", PIPELINE)
    pipelines.put_pipeline("dev", "app", PIPELINE)
    pipelines.set_paused("dev", "app", True)
    pipelines.set_paused("dev", "app", True)  # no change: nothing to tell
    pipelines.set_paused("dev", "app", False)
    pipelines.delete_pipeline("dev", "app")

    assert events_since() == [
        ("Normal", "PipelineCreated", "Pipeline dev/app created"),
        ("Normal", "PipelineUpdated", "Pipeline dev/app updated"),
        ("Normal", "PipelinePaused", "Pipeline dev/app paused"),
        ("Normal", "PipelineUnpaused", "Pipeline dev/app unpaused"),
        ("Normal", "PipelineDeleted", "Pipeline dev/app deleted"),
    ]
    assert {e.kind for e in journal.read_after(0, 10)} == {"Pipeline"}


def test_a_refused_change_journals_nothing(pipeline):
    run_start.create_run(*pipeline)
    before = last_id()

    with pytest.raises(Invalid):
        pipelines.put_pipeline(*pipeline, {**PIPELINE, "steps": []})
    with pytest.raises(FailedPrecondition):
        pipelines.delete_pipeline(*pipeline)

    assert events_since(before) == []


def test_a_passing_run_is_journaled_from_start_to_end_with_bobs_times(pipeline):
    # Given a run claimed, initialized, running, paused, resumed and passed
    start = last_id()
    run_id = run_start.create_run(*pipeline).id
    run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS)
    path = [S.INITIALIZED, S.RUNNING, S.PAUSED, S.RUNNING, S.PASSED]
    apply_events([status_event(run_id, seq, s) for seq, s in enumerate(path, start=1)])

    # Then each status it entered is an event, in order
    run = f"Pipeline dev/app run {run_id}"
    assert events_since(start) == [
        ("Normal", "StartPipelineRun", f"{run} started"),
        ("Normal", "PipelineInitializing", f"{run} initializing"),
        ("Normal", "PipelineInitialized", f"{run} initialized"),
        ("Normal", "PipelineRunning", f"{run} running"),
        ("Normal", "PipelinePaused", f"{run} paused"),
        ("Normal", "PipelineResumed", f"{run} resumed"),
        ("Normal", "PipelineSuccessful", f"{run} successful"),
    ]
    # And its times are Bob's: started is the first RUNNING (seq 2), not the resume
    info = run_queries.get_run(run_id)
    assert info.initiated_at_ms >= info.created_at_ms
    assert (info.initialized_at_ms, info.started_at_ms, info.completed_at_ms) == (
        1_000,
        2_000,
        5_000,
    )


def test_a_failure_is_a_warning_with_its_reason(pipeline):
    run_id = run_start.create_run(*pipeline).id
    run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS)
    before = last_id()

    apply_events(
        [
            status_event(run_id, 1, S.RUNNING),
            status_event(run_id, 2, S.FAILED, "step 1 exited with 2"),
        ]
    )

    assert events_since(before)[-1] == (
        "Warning",
        "PipelineFailed",
        f"Pipeline dev/app run {run_id} failed: step 1 exited with 2",
    )


def test_a_run_stopped_before_it_started_says_so(pipeline):
    run_id = run_start.create_run(*pipeline).id
    before = last_id()

    run_commands.stop_run(run_id)

    assert events_since(before) == [
        (
            "Normal",
            "PipelineStopped",
            f"Pipeline dev/app run {run_id} stopped: {run_commands.STOPPED_BEFORE_START}",
        )
    ]
    assert run_queries.get_run(run_id).completed_at_ms > 0


def test_a_lost_run_is_a_warning_and_its_new_attempt_starts_without_old_times(pipeline):
    run_id = run_start.create_run(*pipeline).id
    run_commands.claim_run(run_id, 1, "runner-1", -1)
    apply_events([status_event(run_id, 1, S.INITIALIZED)])
    before = last_id()

    leases.expire(LEASE_MS, max_attempts=3)

    [(kind, reason, message)] = events_since(before)
    assert (kind, reason) == ("Warning", "PipelineRetrying")
    assert message.startswith(f"Pipeline dev/app run {run_id} queued again: runner lost:")
    assert message.endswith("retrying as attempt 2")
    info = run_queries.get_run(run_id)
    assert (info.initiated_at_ms, info.initialized_at_ms, info.started_at_ms) == (0, 0, 0)


def test_a_discarded_run_is_journaled_as_not_started(pipeline):
    run_id = run_start.create_run(*pipeline).id
    before = last_id()

    run_start.discard_run(run_id, "the job queue is full")

    assert events_since(before) == [
        (
            "Warning",
            "PipelineDiscarded",
            f"Pipeline dev/app run {run_id} was not started: the job queue is full",
        )
    ]


def test_reads_are_oldest_first_after_an_id_and_capped_at_a_page(database):
    for n in range(journal.PAGE_MAX + 5):
        journal.append("Pipeline", "Test", f"event {n}")

    first = journal.read_after(0, 0)
    rest = journal.read_after(first[-1].id, 10)

    assert len(first) == journal.PAGE_MAX
    assert [e.message for e in first[:2]] == ["event 0", "event 1"]
    assert [e.message for e in rest] == [f"event {n}" for n in range(1000, 1005)]
    assert journal.read_after(2**64 - 1, 10) == []


def test_a_long_message_is_cut(database):
    journal.append("Pipeline", "Test", "x" * (journal.MESSAGE_MAX * 2))

    [event] = journal.read_after(0, 1)
    assert len(event.message) == journal.MESSAGE_MAX and event.message.endswith("...")


def test_prune_keeps_the_newest_rows_in_bounded_batches(database):
    for n in range(10):
        journal.append("Pipeline", "Test", f"event {n}")
    now = journal.read_after(0, 1)[0].at_ms

    assert journal.prune(now, keep_rows=3, batch=4) == 4
    assert journal.prune(now, keep_rows=3, batch=4) == 3
    assert journal.prune(now, keep_rows=3, batch=4) == 0
    assert [e.message for e in journal.read_after(0, 100)] == ["event 7", "event 8", "event 9"]


def test_prune_drops_events_older_than_a_week_but_never_the_newest(database):
    for n in range(3):
        journal.append("Pipeline", "Test", f"event {n}", at_ms=1_000)
    later = 1_000 + journal.KEEP_MS + 1

    assert journal.prune(later, keep_rows=100, batch=100) == 2
    [kept] = journal.read_after(0, 100)
    journal.append("Pipeline", "Test", "after")

    # Ids keep increasing: a follower that saw the last one still sees what comes next.
    assert [e.message for e in journal.read_after(kept.id, 100)] == ["after"]
    assert ClusterEvent.select().count() == 2
