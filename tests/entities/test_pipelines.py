from __future__ import annotations

import pytest

from bob_common.run_states import RunStatus
from entities_svc import pipelines, progress, run_commands, run_queries, run_start
from entities_svc.errors import FailedPrecondition, Invalid, NotFound
from tests.entities.support import LEASE_MS, PIPELINE, log_event, status_event, step_event


def _finish(run_id: str, status: RunStatus) -> None:
    """Moves a run to `status` the way a runner would: claim, then status events."""
    assert run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS).claimed
    path = {
        RunStatus.INITIALIZING: [],
        RunStatus.RUNNING: [RunStatus.RUNNING],
        RunStatus.PASSED: [RunStatus.RUNNING, RunStatus.PASSED],
        RunStatus.FAILED: [RunStatus.FAILED],
    }[status]
    progress.apply_events([status_event(run_id, seq, s) for seq, s in enumerate(path, start=1)])


def test_put_creates_then_replaces_keeping_paused(database):
    assert pipelines.put_pipeline("dev", "app", PIPELINE) is True
    pipelines.set_paused("dev", "app", True)

    replaced = {**PIPELINE, "image": "alpine:3"}
    assert pipelines.put_pipeline("dev", "app", replaced) is False

    stored = pipelines.get_pipeline("dev", "app")
    assert stored.definition == replaced
    assert stored.paused is True


def test_get_unknown_pipeline_is_not_found_naming_it(database):
    with pytest.raises(NotFound, match="Pipeline dev/x not found"):
        pipelines.get_pipeline("dev", "x")


def test_put_with_empty_name_is_invalid(database):
    with pytest.raises(Invalid):
        pipelines.put_pipeline("dev", "", PIPELINE)


def test_list_filters_by_group_and_name_ordered_by_group_then_name(database):
    for group, name in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "x")]:
        pipelines.put_pipeline(group, name, PIPELINE)

    def keys(**filters):
        return [(p.group, p.name) for p in pipelines.list_pipelines(**filters)]

    assert keys() == [("a", "x"), ("a", "y"), ("b", "a"), ("b", "z")]
    assert keys(group="b") == [("b", "a"), ("b", "z")]
    assert keys(name="x") == [("a", "x")]
    assert keys(group="b", name="x") == []


def test_list_by_status_looks_at_the_latest_run_only(database):
    for name in ("passed-then-pending", "passed", "never-ran"):
        pipelines.put_pipeline("dev", name, PIPELINE)
    _finish(run_start.create_run("dev", "passed-then-pending").id, RunStatus.PASSED)
    run_start.create_run("dev", "passed-then-pending")
    _finish(run_start.create_run("dev", "passed").id, RunStatus.PASSED)

    def names(status):
        return [p.name for p in pipelines.list_pipelines(status=status)]

    assert names(RunStatus.PASSED) == ["passed"]
    assert names(RunStatus.PENDING) == ["passed-then-pending"]
    assert names(RunStatus.FAILED) == []


def test_delete_removes_pipeline_with_its_runs_and_logs(pipeline):
    run_id = run_start.create_run(*pipeline).id
    _finish(run_id, RunStatus.RUNNING)
    progress.apply_events(
        [
            log_event(run_id, 2, 0, 3),
            step_event(run_id, 3, 0),
            status_event(run_id, 4, RunStatus.PASSED),
        ]
    )

    pipelines.delete_pipeline(*pipeline)

    with pytest.raises(NotFound):
        pipelines.get_pipeline(*pipeline)
    with pytest.raises(NotFound):
        run_queries.get_logs(run_id, 0, 10)
    pipelines.put_pipeline(*pipeline, PIPELINE)
    assert run_queries.list_runs(*pipeline) == []


def test_delete_with_active_runs_is_refused_listing_them(pipeline):
    pending = run_start.create_run(*pipeline).id
    running = run_start.create_run(*pipeline).id
    _finish(running, RunStatus.RUNNING)
    _finish(run_start.create_run(*pipeline).id, RunStatus.FAILED)

    with pytest.raises(FailedPrecondition) as refused:
        pipelines.delete_pipeline(*pipeline)

    assert str(refused.value) == f"Pipeline has active runs: {pending}, {running}"
    assert pipelines.get_pipeline(*pipeline)


def test_delete_unknown_pipeline_is_not_found(database):
    with pytest.raises(NotFound):
        pipelines.delete_pipeline("dev", "x")


def test_pause_unknown_pipeline_is_not_found(database):
    with pytest.raises(NotFound):
        pipelines.set_paused("dev", "x", True)
