"""What the journal tells a follower that keeps run statuses (the API): each status change
names its run, status and pipeline, and a run read back names the event behind its
status, so that the two can be ordered."""

from __future__ import annotations

from bob_common.run_states import RunStatus
from bob_pb import entities_pb2 as E
from bob_pb import messages_pb2
from entities_svc import journal, leases, pipelines, run_commands, run_queries, run_start
from entities_svc.progress import apply_events
from tests.entities.support import LEASE_MS, PIPELINE, status_event
from tests.entities.test_servicer import with_stub

S = RunStatus


def _after(after_id: int) -> list[journal.Event]:
    return journal.read_after(after_id, journal.PAGE_MAX)


def test_each_status_change_names_the_run_and_the_run_names_its_latest_event(pipeline):
    start = journal.newest_id()
    run_id = run_start.create_run(*pipeline).id
    assert run_queries.get_run(run_id).status_event_id == journal.newest_id()
    run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS)
    apply_events([status_event(run_id, 1, S.RUNNING), status_event(run_id, 2, S.PASSED)])

    events = _after(start)
    assert [(e.run_id, e.run_status, e.group, e.name) for e in events] == [
        (run_id, S.PENDING, "dev", "app"),
        (run_id, S.INITIALIZING, "dev", "app"),
        (run_id, S.RUNNING, "dev", "app"),
        (run_id, S.PASSED, "dev", "app"),
    ]
    assert run_queries.get_run(run_id).status_event_id == events[-1].id == journal.newest_id()


def test_a_lost_run_and_a_discarded_one_are_told_too(pipeline):
    lost = run_start.create_run(*pipeline).id
    run_commands.claim_run(lost, 1, "runner-1", LEASE_MS)
    before = journal.newest_id()
    leases.release(lost, 1, "runner-1", "shutting down")
    retried = _after(before)
    assert [(e.run_id, e.run_status) for e in retried] == [(lost, S.PENDING)]
    assert run_queries.get_run(lost).status_event_id == retried[-1].id

    discarded = run_start.create_run(*pipeline).id
    before = journal.newest_id()
    run_start.discard_run(discarded)
    # Status 0: the run is gone.
    assert [(e.run_id, e.run_status) for e in _after(before)] == [(discarded, 0)]


def test_pipeline_events_name_the_pipeline_and_no_run(database):
    pipelines.put_pipeline("dev", "app", PIPELINE)
    pipelines.delete_pipeline("dev", "app")
    assert [(e.reason, e.group, e.name, e.run_id) for e in _after(0)] == [
        ("PipelineCreated", "dev", "app", ""),
        ("PipelineDeleted", "dev", "app", ""),
    ]


def test_newest_id_is_zero_for_an_empty_journal(database):
    assert journal.newest_id() == 0
    pipelines.put_pipeline("dev", "app", PIPELINE)
    assert journal.newest_id() == _after(0)[-1].id


def test_list_events_tells_where_the_journal_stands_and_runs_name_their_event(db_url, rabbit_url):
    async def scenario(stub):
        # A follower that starts now learns the newest id without reading the journal
        start = await stub.ListEvents(E.ListEventsRequest(after_id=2**63 - 1))
        assert list(start.events) == [] and start.newest_id > 0
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        page = await stub.ListEvents(E.ListEventsRequest(after_id=start.newest_id))
        run = await stub.GetRun(E.RunRef(run_id=job.run_id))

        [started] = page.events
        assert (started.run_id, started.run_status, started.group, started.name) == (
            job.run_id,
            messages_pb2.PENDING,
            "dev",
            "app",
        )
        assert page.newest_id == started.id == run.status_event_id

    with_stub(db_url, rabbit_url, scenario)
