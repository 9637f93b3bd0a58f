from __future__ import annotations

import json
import re
import threading

import pytest

from bob_common.run_states import RunStatus
from entities_svc import pipelines, run_commands, run_queries, run_start, runner_grants, runners
from entities_svc.errors import FailedPrecondition, Invalid, NotFound
from entities_svc.models import Run
from entities_svc.models import database as bound_database
from entities_svc.progress import apply_events
from tests.entities.support import LEASE_MS, PIPELINE, log_event, status_event


def test_create_records_a_pending_first_attempt_with_a_pipeline_snapshot(pipeline):
    run = run_start.create_run(*pipeline)
    pipelines.put_pipeline(*pipeline, {**PIPELINE, "image": "changed:1"})

    stored = run_queries.get_run(run.id)
    assert re.fullmatch(r"r-[0-9a-f-]{36}", run.id)
    assert stored.status is RunStatus.PENDING
    assert (stored.attempt, stored.runner_type, stored.runner_id) == (1, "docker", "")
    assert stored.created_at_ms > 0 and stored.started_at_ms == stored.completed_at_ms == 0
    # The job carries the snapshot, and the run keeps it whatever the pipeline becomes
    assert run.pipeline == PIPELINE
    assert json.loads(Run.get(Run.id == run.id).pipeline) == PIPELINE


def test_create_routes_to_a_runner_type_once_a_runner_of_it_was_seen(pipeline):
    runner_grants.put(*pipeline, ["docker", "podman"], ("docker",))
    with pytest.raises(FailedPrecondition, match="No runner of type 'podman'"):
        run_start.create_run(*pipeline, "podman")

    runners.record_heartbeats([runners.Heartbeat("podman-1", "podman", 1, (), 1_000)])

    assert run_start.create_run(*pipeline, "podman").runner_type == "podman"
    with pytest.raises(Invalid):
        run_start.create_run(*pipeline, "bad type!")


def test_the_default_runner_type_needs_no_runner_seen(pipeline):
    assert run_start.create_run(*pipeline).runner_type == "docker"


def test_stopping_a_pending_run_stops_it_at_once_and_its_claim_is_refused(pipeline):
    run = run_start.create_run(*pipeline)

    request = run_commands.stop_run(run.id)

    assert request.broadcast is False
    assert request.run.status is RunStatus.STOPPED and request.run.completed_at_ms
    claim = run_commands.claim_run(run.id, 1, "runner-1", LEASE_MS)
    assert not claim.claimed and claim.reason == "run is stopped"


def test_stopping_an_active_run_asks_for_a_broadcast(pipeline):
    run = run_start.create_run(*pipeline)
    run_commands.claim_run(run.id, 1, "runner-1", LEASE_MS)

    request = run_commands.stop_run(run.id)

    assert request.broadcast is True
    assert request.run.status is RunStatus.INITIALIZING


def test_stopping_an_ended_run_is_refused_and_changes_nothing(pipeline):
    run = run_start.create_run(*pipeline)
    run_commands.stop_run(run.id)

    with pytest.raises(FailedPrecondition, match="has already ended: stopped"):
        run_commands.stop_run(run.id)
    assert run_queries.get_run(run.id).reason == run_commands.STOPPED_BEFORE_START


def test_latest_runs_gives_each_pipelines_newest_run(pipeline):
    run_start.create_run(*pipeline)
    newest = run_start.create_run(*pipeline)
    pipelines.put_pipeline("dev", "never-ran", PIPELINE)

    latest = run_queries.latest_runs([pipeline, ("dev", "never-ran")])

    assert latest == {pipeline: run_queries.get_run(newest.id)}


def test_create_on_a_paused_pipeline_is_refused(pipeline):
    pipelines.set_paused(*pipeline, True)
    with pytest.raises(FailedPrecondition, match=r"^Pipeline is paused\. Unpause it first\.$"):
        run_start.create_run(*pipeline)

    pipelines.set_paused(*pipeline, False)
    assert run_start.create_run(*pipeline).status is RunStatus.PENDING


def test_create_on_an_unknown_pipeline_is_not_found(database):
    with pytest.raises(NotFound, match="Pipeline dev/x not found"):
        run_start.create_run("dev", "x")


def test_list_runs_oldest_first(pipeline):
    created = [run_start.create_run(*pipeline).id for _ in range(5)]
    assert [r.id for r in run_queries.list_runs(*pipeline)] == created


def test_list_runs_newest_first_pages_on_to_older_runs(pipeline):
    created = [run_start.create_run(*pipeline).id for _ in range(5)]

    first = run_queries.list_runs(*pipeline, limit=2, newest_first=True)
    rest = run_queries.list_runs(*pipeline, first[-1].id, newest_first=True)

    assert [r.id for r in first + rest] == created[::-1]


def test_discard_deletes_a_pending_run_only(pipeline):
    pending = run_start.create_run(*pipeline).id
    claimed = run_start.create_run(*pipeline).id
    run_commands.claim_run(claimed, 1, "runner-1", LEASE_MS)

    run_start.discard_run(pending)
    with pytest.raises(FailedPrecondition, match="initializing"):
        run_start.discard_run(claimed)

    assert [r.id for r in run_queries.list_runs(*pipeline)] == [claimed]
    with pytest.raises(NotFound):
        run_start.discard_run(pending)


def test_claim_turns_a_pending_run_initializing_and_owned(pipeline):
    run_id = run_start.create_run(*pipeline).id

    claim = run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS)

    assert claim == run_commands.Claim(True, "", RunStatus.INITIALIZING)
    run = run_queries.get_run(run_id)
    assert (run.status, run.runner_id) == (RunStatus.INITIALIZING, "runner-1")
    # Claimed is Bob's initiated-at; started-at waits for the steps (RUNNING).
    assert run.initiated_at_ms >= run.created_at_ms
    assert run.started_at_ms == 0


def test_second_claim_is_refused_naming_the_owner(pipeline):
    run_id = run_start.create_run(*pipeline).id
    run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS)

    claim = run_commands.claim_run(run_id, 1, "runner-2", LEASE_MS)

    assert claim == run_commands.Claim(
        False, "run already claimed by runner-1", RunStatus.INITIALIZING
    )
    assert run_queries.get_run(run_id).runner_id == "runner-1"


def test_claim_of_a_stale_attempt_is_refused(pipeline):
    run_id = run_start.create_run(*pipeline).id

    claim = run_commands.claim_run(run_id, 2, "runner-1", LEASE_MS)

    assert not claim.claimed and claim.reason.startswith("stale attempt")
    assert claim.status is RunStatus.PENDING


def test_claim_of_a_finished_run_is_refused_with_its_status(pipeline):
    run_id = run_start.create_run(*pipeline).id
    apply_events([status_event(run_id, 1, RunStatus.STOPPED, "stopped by user")])

    claim = run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS)

    assert claim == run_commands.Claim(False, "run is stopped", RunStatus.STOPPED)


def test_claim_of_an_unknown_run_is_not_found(database):
    with pytest.raises(NotFound):
        run_commands.claim_run("r-nope", 1, "runner-1", LEASE_MS)


def test_concurrent_claims_from_threads_have_exactly_one_winner(pipeline):
    run_id = run_start.create_run(*pipeline).id
    contenders = 8
    start = threading.Barrier(contenders)
    claims: dict[str, run_commands.Claim] = {}

    def claim(runner_id: str) -> None:
        try:
            start.wait()
            claims[runner_id] = run_commands.claim_run(run_id, 1, runner_id, LEASE_MS)
        finally:
            bound_database.close()  # each thread has its own connection

    threads = [threading.Thread(target=claim, args=(f"runner-{i}",)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [runner for runner, c in claims.items() if c.claimed]
    assert len(claims) == contenders and len(winners) == 1
    assert run_queries.get_run(run_id).runner_id == winners[0]
    losers = {c.reason for c in claims.values() if not c.claimed}
    assert losers == {f"run already claimed by {winners[0]}"}


def test_get_logs_returns_a_window_ordered_by_line_number(pipeline):
    run_id = run_start.create_run(*pipeline).id
    # Batches arriving out of order still read in line order.
    apply_events([log_event(run_id, 2, 10, 10), log_event(run_id, 1, 0, 10)])

    assert run_queries.get_logs(run_id, 0, 3) == ["line 0", "line 1", "line 2"]
    assert run_queries.get_logs(run_id, 8, 4) == ["line 8", "line 9", "line 10", "line 11"]
    assert run_queries.get_logs(run_id, 18, 100) == ["line 18", "line 19"]
    assert run_queries.get_logs(run_id, 2**64 - 1, 100) == []
    assert run_queries.get_logs(run_id, 0, 0) == []


def test_get_logs_caps_the_number_of_lines(pipeline):
    run_id = run_start.create_run(*pipeline).id
    apply_events([log_event(run_id, 1, 0, run_queries.MAX_LOG_LINES + 5)])

    assert len(run_queries.get_logs(run_id, 0, 2**32 - 1)) == run_queries.MAX_LOG_LINES


def test_tail_offset_is_where_the_last_lines_start(pipeline):
    run_id = run_start.create_run(*pipeline).id
    assert run_queries.tail_offset(run_id, 5) == 0  # no log yet
    apply_events([log_event(run_id, 1, 0, 20)])

    start = run_queries.tail_offset(run_id, 5)

    assert start == 15
    assert run_queries.get_logs(run_id, start, 5) == [f"line {n}" for n in range(15, 20)]
    assert run_queries.tail_offset(run_id, 100) == 0


def test_get_logs_of_an_unknown_run_is_not_found(database):
    with pytest.raises(NotFound, match="r-nope"):
        run_queries.get_logs("r-nope", 0, 10)
