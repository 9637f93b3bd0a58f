"""The API's run statuses, kept current by entities' journal: pure logic."""

from __future__ import annotations

from api_server.run_statuses import RunStatuses
from bob_pb import entities_pb2, messages_pb2


def _run(run_id: str, status: int, event_id: int, name: str = "app") -> entities_pb2.Run:
    return entities_pb2.Run(
        id=run_id, group="dev", name=name, status=status, status_event_id=event_id
    )


def _event(event_id: int, run_id: str = "", status: int = 0, **fields) -> entities_pb2.ClusterEvent:
    return entities_pb2.ClusterEvent(
        id=event_id, run_id=run_id, run_status=status, group="dev", name="app", **fields
    )


def test_a_running_run_is_answered_from_memory_only_while_the_journal_is_followed():
    statuses = RunStatuses()
    statuses.caught_up()
    statuses.remember(_run("r-1", messages_pb2.RUNNING, 5), statuses.asking())
    assert statuses.status("r-1") == messages_pb2.RUNNING
    statuses.apply(_event(6, "r-1", messages_pb2.PAUSED))
    assert statuses.status("r-1") == messages_pb2.PAUSED
    statuses.lost()
    assert statuses.status("r-1") is None


def test_a_status_that_may_change_is_not_kept_unless_the_journal_was_followed_all_the_while():
    statuses = RunStatuses()
    # Given a run asked of entities while the journal is not followed (entities restarting)
    asked = statuses.asking()
    statuses.remember(_run("r-1", messages_pb2.PENDING, 5), asked)
    # When the follower takes up the journal from where it stands, after the run passed
    statuses.caught_up()
    # Then the pending status was not kept: the run is asked of entities again
    assert statuses.status("r-1") is None
    # And an ended run asked meanwhile is kept, its status never changes
    statuses.remember(_run("r-2", messages_pb2.PASSED, 6), asked)
    assert statuses.status("r-2") == messages_pb2.PASSED
    # Nor is an answer kept whose question came before the journal was lost and taken up
    asked = statuses.asking()
    statuses.lost()
    statuses.caught_up()
    statuses.remember(_run("r-3", messages_pb2.RUNNING, 7), asked)
    assert statuses.status("r-3") is None
    # While one asked and answered under the same following is
    statuses.remember(_run("r-3", messages_pb2.RUNNING, 7), statuses.asking())
    assert statuses.status("r-3") == messages_pb2.RUNNING


def test_a_status_never_goes_back_to_an_older_one():
    statuses = RunStatuses()
    statuses.caught_up()
    # The journal brought `passed` (event 9) while a GetRun that read `running` (event 7)
    # was on its way: the late answer changes nothing.
    statuses.apply(_event(9, "r-1", messages_pb2.PASSED))
    statuses.remember(_run("r-1", messages_pb2.RUNNING, 7), statuses.asking())
    assert statuses.status("r-1") == messages_pb2.PASSED
    # A late event older than what GetRun answered changes nothing either.
    statuses.remember(_run("r-2", messages_pb2.FAILED, 12), statuses.asking())
    statuses.apply(_event(11, "r-2", messages_pb2.RUNNING))
    assert statuses.status("r-2") == messages_pb2.FAILED


def test_losing_the_journal_forgets_what_may_change_and_keeps_what_ended():
    statuses = RunStatuses()
    statuses.caught_up()
    statuses.apply(_event(1, "r-running", messages_pb2.RUNNING))
    statuses.apply(_event(2, "r-passed", messages_pb2.PASSED))
    statuses.lost()
    assert not statuses.live
    assert statuses.status("r-running") is None
    assert statuses.status("r-passed") == messages_pb2.PASSED
    assert len(statuses) == 1


def test_discarded_runs_and_deleted_pipelines_are_forgotten():
    statuses = RunStatuses()
    statuses.caught_up()
    statuses.apply(_event(1, "r-1", messages_pb2.PENDING))
    statuses.apply(_event(2, "r-1", messages_pb2.RUN_STATUS_UNSPECIFIED))  # discarded
    assert statuses.status("r-1") is None
    statuses.apply(_event(3, "r-2", messages_pb2.PASSED))
    statuses.apply(_event(4, reason="PipelineDeleted", kind="Pipeline"))
    assert statuses.status("r-2") is None
    assert len(statuses) == 0


def test_a_stop_made_here_is_read_back_from_entities():
    statuses = RunStatuses()
    statuses.caught_up()
    statuses.apply(_event(1, "r-1", messages_pb2.PENDING))
    statuses.forget("r-1")
    assert statuses.status("r-1") is None
