"""The gRPC adapter through a real in-process server and the generated stub."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bob_common import topology
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2, pipeline_pb2
from entities_svc.db import DatabaseThread
from entities_svc.job_queue import JobQueue
from entities_svc.server import start_server
from entities_svc.servicer import EntitiesServicer
from tests.entities.support import LEASE_MS, make_settings
from tests.waiting import await_until

E = entities_pb2
M = messages_pb2
PIPELINE = pipeline_pb2.Pipeline(
    image="busybox:musl",
    steps=[
        pipeline_pb2.Step(cmd="echo hi > out.txt", vars={"A": "1"}),
        pipeline_pb2.Step(
            cmd="cat src/README",
            needs_resource="src",
            produces_artifact=pipeline_pb2.Artifact(name="out", path="out.txt", store="s3"),
        ),
    ],
    vars={"LANG": "C"},
    resources=[
        pipeline_pb2.Resource(name="src", type="external", provider="git", params={"r": "m"})
    ],
)
REF = E.PipelineRef(group="dev", name="app")


@contextlib.asynccontextmanager
async def backing(db_url: str, rabbit_url: str) -> AsyncIterator[tuple[DatabaseThread, JobQueue]]:
    """What a servicer is built on: the database and the job queue, connected."""
    db = DatabaseThread()
    await db.open(db_url)
    jobs = JobQueue(make_settings(db_url, rabbit_url).common)
    await jobs.start()

    async def connected() -> bool:
        return jobs.connected

    try:
        await await_until(connected, what="the job queue to connect")
        yield db, jobs
    finally:
        await jobs.close()
        await db.close()


@contextlib.asynccontextmanager
async def serving(db_url: str, rabbit_url: str) -> AsyncIterator[grpc.aio.Channel]:
    async with backing(db_url, rabbit_url) as (db, jobs):
        servicer = EntitiesServicer(db, jobs, lease_ms=LEASE_MS)
        server, port, _ = await start_server(servicer, "127.0.0.1:0")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield channel
        finally:
            await server.stop(None)


def with_stub(
    db_url: str,
    rabbit_url: str,
    scenario: Callable[[entities_pb2_grpc.EntitiesStub], Awaitable[None]],
):
    async def main() -> None:
        async with serving(db_url, rabbit_url) as channel:
            stub = entities_pb2_grpc.EntitiesStub(channel)
            # PIPELINE names these plugins; a run starts only once they are registered.
            await stub.PutResourceProvider(E.Plugin(name="git", url="http://127.0.0.1:8001"))
            await stub.PutArtifactStore(E.Plugin(name="s3", url="http://127.0.0.1:8002"))
            await stub.PutPipeline(E.PutPipelineRequest(group="dev", name="app", pipeline=PIPELINE))
            await scenario(stub)

    asyncio.run(main())


async def queued_jobs(rabbit_url: str, runner_type: str = "docker") -> list[M.Job]:
    """The jobs waiting in a job queue, left there."""
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.job_queue_name(runner_type))
        found = []
        while message := await queue.get(no_ack=False, fail=False):
            found.append(M.Job.FromString(message.body))
        return found  # unacked: closing the channel puts them back


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    return failed.value


def test_pipeline_round_trips_and_replacing_reports_not_created(db_url, rabbit_url):
    async def scenario(stub):
        stored = await stub.GetPipeline(REF)
        replaced = await stub.PutPipeline(
            E.PutPipelineRequest(group="dev", name="app", pipeline=PIPELINE)
        )
        created = await stub.PutPipeline(
            E.PutPipelineRequest(group="dev", name="other", pipeline=PIPELINE)
        )

        assert stored == E.StoredPipeline(group="dev", name="app", pipeline=PIPELINE, paused=False)
        assert (replaced.created, created.created) == (False, True)

    with_stub(db_url, rabbit_url, scenario)


def test_unknown_pipeline_is_not_found(db_url, rabbit_url):
    async def scenario(stub):
        failed = await rpc_error(stub.GetPipeline(E.PipelineRef(group="dev", name="x")))

        assert failed.code() == grpc.StatusCode.NOT_FOUND
        assert failed.details() == "Pipeline dev/x not found"

    with_stub(db_url, rabbit_url, scenario)


def test_create_run_queues_the_job_and_returns_it(db_url, rabbit_url):
    async def scenario(stub):
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        run = await stub.GetRun(E.RunRef(run_id=job.run_id))
        queued = await queued_jobs(rabbit_url)

        assert queued == [job]
        assert job.run_id.startswith("r-") and job.attempt == 1 and job.first_line_no == 0
        assert (job.group, job.name, job.runner_type) == ("dev", "app", "docker")
        assert job.pipeline == PIPELINE
        assert job.enqueued_at_ms == run.created_at_ms > 0
        assert run.status == messages_pb2.PENDING

    with_stub(db_url, rabbit_url, scenario)


def test_create_run_on_a_paused_pipeline_fails_precondition(db_url, rabbit_url):
    async def scenario(stub):
        await stub.SetPipelinePaused(
            E.SetPipelinePausedRequest(group="dev", name="app", paused=True)
        )

        failed = await rpc_error(stub.CreateRun(E.CreateRunRequest(group="dev", name="app")))

        assert failed.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert failed.details() == "Pipeline is paused. Unpause it first."
        assert (await stub.GetPipeline(REF)).paused

    with_stub(db_url, rabbit_url, scenario)


def test_delete_with_active_runs_fails_precondition_listing_their_ids(db_url, rabbit_url):
    async def scenario(stub):
        ids = [
            (await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))).run_id
            for _ in range(2)
        ]

        failed = await rpc_error(stub.DeletePipeline(REF))

        assert failed.code() == grpc.StatusCode.FAILED_PRECONDITION
        listed = failed.details().split(":", 1)[1]
        assert [run_id.strip() for run_id in listed.split(",")] == ids

        for run_id in ids:
            await stub.StopRun(E.RunRef(run_id=run_id))
        await stub.DeletePipeline(REF)
        assert (await rpc_error(stub.GetPipeline(REF))).code() == grpc.StatusCode.NOT_FOUND

    with_stub(db_url, rabbit_url, scenario)


def test_claim_is_a_compare_and_set(db_url, rabbit_url):
    async def scenario(stub):
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))

        def claim(runner_id):
            return stub.ClaimRun(
                E.ClaimRunRequest(run_id=job.run_id, attempt=1, runner_id=runner_id)
            )

        first, second = await claim("runner-1"), await claim("runner-2")
        unknown = await rpc_error(
            stub.ClaimRun(E.ClaimRunRequest(run_id="r-nope", attempt=1, runner_id="runner-1"))
        )

        assert (first.claimed, first.status) == (True, messages_pb2.INITIALIZING)
        assert second == E.ClaimRunResponse(
            claimed=False,
            reason="run already claimed by runner-1",
            status=messages_pb2.INITIALIZING,
        )
        assert unknown.code() == grpc.StatusCode.NOT_FOUND
        run = await stub.GetRun(E.RunRef(run_id=job.run_id))
        assert (run.runner_id, run.status) == ("runner-1", messages_pb2.INITIALIZING)
        # Claimed is Bob's initiated-at; started-at waits for the steps (RUNNING).
        assert run.initiated_at_ms >= run.created_at_ms > 0
        assert (run.initialized_at_ms, run.started_at_ms) == (0, 0)

    with_stub(db_url, rabbit_url, scenario)


def test_list_pipelines_and_runs_with_filters(db_url, rabbit_url):
    async def scenario(stub):
        await stub.PutPipeline(E.PutPipelineRequest(group="ops", name="app", pipeline=PIPELINE))
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))

        everything = await stub.ListPipelines(E.ListPipelinesRequest())
        pending = await stub.ListPipelines(E.ListPipelinesRequest(status=messages_pb2.PENDING))
        ops = await stub.ListPipelines(E.ListPipelinesRequest(group="ops"))
        listed = await stub.ListRuns(REF)

        assert [(p.group, p.name) for p in everything.pipelines] == [("dev", "app"), ("ops", "app")]
        assert [(p.group, p.name) for p in pending.pipelines] == [("dev", "app")]
        assert [(p.group, p.name) for p in ops.pipelines] == [("ops", "app")]
        assert [r.id for r in listed.runs] == [job.run_id]
        bad = await rpc_error(stub.ListPipelines(E.ListPipelinesRequest(status=42)))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT

    with_stub(db_url, rabbit_url, scenario)


def test_logs_of_an_unknown_run_are_not_found(db_url, rabbit_url):
    async def scenario(stub):
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))

        empty = await stub.GetLogs(E.GetLogsRequest(run_id=job.run_id, limit=10))
        failed = await rpc_error(stub.GetLogs(E.GetLogsRequest(run_id="r-nope", limit=10)))

        assert list(empty.lines) == []
        assert failed.code() == grpc.StatusCode.NOT_FOUND

    with_stub(db_url, rabbit_url, scenario)


def test_plugins_are_put_listed_and_deleted(db_url, rabbit_url):
    async def scenario(stub):
        await stub.PutResourceProvider(E.Plugin(name="git", url="http://127.0.0.1:8001"))
        await stub.PutArtifactStore(E.Plugin(name="s3", url="http://127.0.0.1:8002"))

        providers = await stub.ListResourceProviders(empty_pb2.Empty())
        await stub.DeleteArtifactStore(E.PluginRef(name="s3"))
        stores = await stub.ListArtifactStores(empty_pb2.Empty())
        missing = await rpc_error(stub.DeleteResourceProvider(E.PluginRef(name="nope")))
        invalid = await rpc_error(stub.PutArtifactStore(E.Plugin(name="x", url="not a url")))

        assert list(providers.plugins) == [E.Plugin(name="git", url="http://127.0.0.1:8001")]
        assert list(stores.plugins) == []
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT

    with_stub(db_url, rabbit_url, scenario)


def test_health_reports_serving_for_the_server_and_the_entities_service(db_url, rabbit_url):
    async def main() -> None:
        async with serving(db_url, rabbit_url) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "bob.v1.Entities"):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING

    asyncio.run(main())


def test_stop_run_stops_a_pending_run_and_refuses_an_ended_one(db_url, rabbit_url):
    async def scenario(stub):
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))

        stopped = await stub.StopRun(E.RunRef(run_id=job.run_id))
        again = await rpc_error(stub.StopRun(E.RunRef(run_id=job.run_id)))
        unknown = await rpc_error(stub.StopRun(E.RunRef(run_id="r-nope")))

        assert stopped.run.status == M.STOPPED and not stopped.broadcast
        assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already ended: stopped" in again.details()
        assert unknown.code() == grpc.StatusCode.NOT_FOUND

    with_stub(db_url, rabbit_url, scenario)


def test_stop_run_of_a_claimed_run_asks_for_a_broadcast(db_url, rabbit_url):
    async def scenario(stub):
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        await stub.ClaimRun(E.ClaimRunRequest(run_id=job.run_id, attempt=1, runner_id="r1"))

        reply = await stub.StopRun(E.RunRef(run_id=job.run_id))

        assert reply.broadcast and reply.run.status == M.INITIALIZING

    with_stub(db_url, rabbit_url, scenario)


def test_pipelines_are_listed_with_their_last_run_and_stats_count_them(db_url, rabbit_url):
    async def scenario(stub):
        await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        newest = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        await stub.PutPipeline(E.PutPipelineRequest(group="dev", name="idle", pipeline=PIPELINE))

        listed = await stub.ListPipelines(E.ListPipelinesRequest(group="dev"))
        stats = await stub.GetStats(empty_pb2.Empty())

        by_name = {p.name: p for p in listed.pipelines}
        assert by_name["app"].last_run.id == newest.run_id
        assert not by_name["idle"].HasField("last_run")
        assert stats.pipelines == 2
        assert dict(stats.runs_by_status) == {"pending": 2}

    with_stub(db_url, rabbit_url, scenario)


def test_reflection_lists_the_entities_and_health_services(db_url, rabbit_url):
    async def main() -> None:
        async with serving(db_url, rabbit_url) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for reply in stub.ServerReflectionInfo(iter([request])):
                names = {s.name for s in reply.list_services_response.service}
                break
        assert {"bob.v1.Entities", "grpc.health.v1.Health"} <= names

    asyncio.run(main())


def test_a_full_job_queue_refuses_the_run_and_leaves_no_trace(db_url, rabbit_url):
    async def scenario(stub):
        # make_settings bounds the queue at 100 jobs; RabbitMQ's quorum queues refuse
        # publishes once the length is over the bound, so they may take one more.
        accepted = []
        while len(accepted) <= 101:
            try:
                accepted.append(await stub.CreateRun(E.CreateRunRequest(group="dev", name="app")))
            except grpc.aio.AioRpcError as exc:
                refused = exc
                break
        runs_after = await stub.ListRuns(REF)

        assert len(accepted) in (100, 101)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "is full" in refused.details() and "BOB_QUEUE_MAX_JOBS" in refused.details()
        assert [run.id for run in runs_after.runs] == [job.run_id for job in accepted]

    with_stub(db_url, rabbit_url, scenario)


def test_leases_answer_orders_and_a_released_run_is_queued_again(db_url, rabbit_url):
    async def scenario(stub):
        first = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        second = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        for job in (first, second):
            await stub.ClaimRun(E.ClaimRunRequest(run_id=job.run_id, attempt=1, runner_id="r1"))
        await stub.StopRun(E.RunRef(run_id=second.run_id))

        renewed = await stub.RenewLeases(
            E.RenewLeasesRequest(
                runner_id="r1",
                runs=[
                    E.RunAttempt(run_id=first.run_id, attempt=1),
                    E.RunAttempt(run_id=second.run_id, attempt=1),
                    E.RunAttempt(run_id=first.run_id, attempt=2),
                ],
            )
        )
        released = await stub.ReleaseRun(
            E.ReleaseRunRequest(
                run_id=first.run_id, attempt=1, runner_id="r1", reason="runner r1 shut down"
            )
        )
        again = await rpc_error(
            stub.ReleaseRun(E.ReleaseRunRequest(run_id=first.run_id, attempt=1, runner_id="r1"))
        )
        stale = await stub.RenewLeases(
            E.RenewLeasesRequest(
                runner_id="r1", runs=[E.RunAttempt(run_id=first.run_id, attempt=1)]
            )
        )
        logs = await stub.GetLogs(E.GetLogsRequest(run_id=first.run_id, limit=10))

        assert [i.order for i in renewed.instructions] == [
            E.ORDER_RUN,
            E.ORDER_STOP,
            E.ORDER_ABANDON,
        ]
        assert renewed.lease_ms == LEASE_MS
        assert (released.status, released.attempt, released.runner_id) == (
            messages_pb2.PENDING,
            2,
            "",
        )
        assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert [i.order for i in stale.instructions] == [E.ORDER_ABANDON]
        assert logs.lines == ["[bob] runner r1 shut down; retrying as attempt 2"]

    with_stub(db_url, rabbit_url, scenario)


def test_pause_is_recorded_for_a_started_run_only(db_url, rabbit_url):
    async def scenario(stub):
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        pending = await rpc_error(
            stub.SetRunPaused(E.SetRunPausedRequest(run_id=job.run_id, paused=True))
        )
        await stub.ClaimRun(E.ClaimRunRequest(run_id=job.run_id, attempt=1, runner_id="r1"))

        await stub.SetRunPaused(E.SetRunPausedRequest(run_id=job.run_id, paused=True))
        paused = await stub.RenewLeases(
            E.RenewLeasesRequest(runner_id="r1", runs=[E.RunAttempt(run_id=job.run_id, attempt=1)])
        )
        await stub.SetRunPaused(E.SetRunPausedRequest(run_id=job.run_id, paused=False))
        resumed = await stub.RenewLeases(
            E.RenewLeasesRequest(runner_id="r1", runs=[E.RunAttempt(run_id=job.run_id, attempt=1)])
        )

        assert pending.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert [i.order for i in paused.instructions] == [E.ORDER_PAUSE]
        assert [i.order for i in resumed.instructions] == [E.ORDER_RUN]

    with_stub(db_url, rabbit_url, scenario)


def test_a_pipeline_reads_back_the_document_it_was_posted_with(db_url, rabbit_url):
    async def scenario(stub):
        document = '{"image": "busybox:musl", "steps": [{"cmd": "true", "needs_resource": ""}]}'
        await stub.PutPipeline(
            E.PutPipelineRequest(group="dev", name="doc", pipeline=PIPELINE, document=document)
        )
        bad = await rpc_error(
            stub.PutPipeline(
                E.PutPipelineRequest(group="dev", name="doc", pipeline=PIPELINE, document="[1, 2]")
            )
        )

        got = await stub.GetPipeline(E.PipelineRef(group="dev", name="doc"))
        listed = await stub.ListPipelines(E.ListPipelinesRequest(group="dev"))

        assert (got.document, got.pipeline) == (document, PIPELINE)
        assert {p.name: p.document for p in listed.pipelines} == {"app": "", "doc": document}
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT

    with_stub(db_url, rabbit_url, scenario)


def test_loggers_are_registered_and_a_run_carries_its_logger_to_the_job(db_url, rabbit_url):
    async def scenario(stub):
        unknown = await rpc_error(
            stub.CreateRun(E.CreateRunRequest(group="dev", name="app", logger="elk"))
        )
        await stub.PutLogger(E.Plugin(name="elk", url="http://127.0.0.1:8004"))
        loggers = await stub.ListLoggers(empty_pb2.Empty())

        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app", logger="elk"))
        run = await stub.GetRun(E.RunRef(run_id=job.run_id))
        await stub.DeleteLogger(E.PluginRef(name="elk"))
        missing = await rpc_error(stub.DeleteLogger(E.PluginRef(name="elk")))

        assert unknown.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert unknown.details() == "Logger 'elk' is not registered"
        assert list(loggers.plugins) == [E.Plugin(name="elk", url="http://127.0.0.1:8004")]
        assert (job.logger, run.logger) == ("elk", "elk")
        assert await queued_jobs(rabbit_url) == [job]
        assert missing.code() == grpc.StatusCode.NOT_FOUND

    with_stub(db_url, rabbit_url, scenario)


def test_a_start_needing_a_missing_plugin_is_refused_and_nothing_is_queued(db_url, rabbit_url):
    async def scenario(stub):
        await stub.DeleteArtifactStore(E.PluginRef(name="s3"))

        refused = await rpc_error(stub.CreateRun(E.CreateRunRequest(group="dev", name="app")))
        listed = await stub.ListRuns(REF)

        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.details() == "Artifact store 's3' of artifact 'out' is not registered"
        assert list(listed.runs) == []
        # No run recorded, in any status.
        assert (await stub.GetStats(empty_pb2.Empty())).runs_by_status == {}

    with_stub(db_url, rabbit_url, scenario)


def test_list_events_answers_the_journal_oldest_first_in_pages(db_url, rabbit_url):
    async def scenario(stub):
        everything = await stub.ListEvents(E.ListEventsRequest())
        page = await stub.ListEvents(E.ListEventsRequest(limit=2))
        rest = await stub.ListEvents(E.ListEventsRequest(after_id=page.events[-1].id))
        beyond = await stub.ListEvents(E.ListEventsRequest(after_id=2**64 - 1))

        assert [(e.kind, e.reason) for e in everything.events] == [
            ("ResourceProvider", "ResourceProviderRegistered"),
            ("ArtifactStore", "ArtifactStoreRegistered"),
            ("Pipeline", "PipelineCreated"),
        ]
        assert list(page.events) + list(rest.events) == list(everything.events)
        first = everything.events[0]
        assert first.type == "Normal" and first.message == "Resource provider git registered"
        assert first.at_ms > 0 and first.id > 0
        assert list(beyond.events) == []

    with_stub(db_url, rabbit_url, scenario)


def test_list_events_waits_for_the_next_event_or_answers_empty(db_url, rabbit_url):
    async def scenario(stub):
        seen = (await stub.ListEvents(E.ListEventsRequest())).events[-1].id

        # Given a follower waiting for what comes after the last event
        waiting = asyncio.ensure_future(
            stub.ListEvents(E.ListEventsRequest(after_id=seen, wait_ms=10_000))
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
        # When a run starts, it learns of it at once
        job = await stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        woken = await asyncio.wait_for(waiting, 5)
        # And a follower with nothing new waits its time and answers empty
        began = asyncio.get_running_loop().time()
        idle = await stub.ListEvents(E.ListEventsRequest(after_id=woken.events[-1].id, wait_ms=300))
        waited = asyncio.get_running_loop().time() - began

        assert [(e.reason, e.message) for e in woken.events] == [
            ("StartPipelineRun", f"Pipeline dev/app run {job.run_id} started")
        ]
        assert list(idle.events) == [] and 0.25 <= waited < 3

    with_stub(db_url, rabbit_url, scenario)
