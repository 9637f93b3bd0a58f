"""The run-event consumer against a real RabbitMQ (a vhost per test) and SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
import grpc
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bob_common import amqp, claim_proof, run_events, topology
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2, pipeline_pb2
from entities_svc.service import EntitiesService
from tests.entities.support import make_settings
from tests.support import raw_db
from tests.support.tcp_proxy import tcp_proxy
from tests.waiting import await_until

E = entities_pb2
M = messages_pb2


@dataclass
class Harness:
    service: EntitiesService
    stub: entities_pb2_grpc.EntitiesStub
    channel: AbstractChannel
    events: AbstractExchange
    # run id -> the secret of its claim, which a runner signs its events with
    secrets: dict[str, bytes] = field(default_factory=dict)

    async def claimed_run(self) -> str:
        await self.stub.PutPipeline(
            E.PutPipelineRequest(
                group="dev",
                name="app",
                pipeline=pipeline_pb2.Pipeline(
                    image="busybox:musl", steps=[pipeline_pb2.Step(cmd="true")]
                ),
            )
        )
        job = await self.stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
        claim = await self.stub.ClaimRun(
            E.ClaimRunRequest(run_id=job.run_id, attempt=1, runner_id="runner-1")
        )
        assert claim.claimed
        self.secrets[job.run_id] = claim.claim_secret
        return job.run_id

    async def publish(self, event: M.RunEvent) -> None:
        """As the claim holder does: signed with the claim's secret."""
        kind = event.WhichOneof("body")
        message = amqp.encode(event)
        if event.run_id in self.secrets:
            message.headers[claim_proof.HEADER] = claim_proof.mac(
                self.secrets[event.run_id], message.body
            )
        await self.events.publish(message, routing_key=topology.run_event_key(event.run_id, kind))

    async def publish_batch(self, events: list[M.RunEvent], key: bytes | None = None) -> None:
        """Several events in one message, as a runner batches them: one MAC over the body,
        with the first event's claim secret unless `key` is given."""
        message = amqp.encode(run_events.batch(events))
        secret = key if key is not None else self.secrets[events[0].run_id]
        message.headers[claim_proof.HEADER] = claim_proof.mac(secret, message.body)
        await self.events.publish(
            message, routing_key=topology.run_event_key(events[0].run_id, run_events.BATCH)
        )

    async def run_with(self, run_id: str, status: int) -> E.Run | None:
        run = await self.stub.GetRun(E.RunRef(run_id=run_id))
        return run if run.status == status else None


@contextlib.asynccontextmanager
async def running_service(db_url: str, rabbit_url: str, **settings) -> AsyncIterator[Harness]:
    service = EntitiesService(
        make_settings(db_url, rabbit_url, batch_max=100, **settings), grace_s=1
    )
    await service.start()
    try:
        await asyncio.wait_for(service.consumer.connected.wait(), 30)

        async def jobs_connected() -> bool:
            return service.jobs.connected

        await await_until(jobs_connected, what="entities' job queue link")
        connection = await amqp.connect(rabbit_url, "entities-test-publisher")
        async with connection, grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as grpc_ch:
            channel = await connection.channel()
            events = await topology.declare_events(channel)
            yield Harness(service, entities_pb2_grpc.EntitiesStub(grpc_ch), channel, events)
    finally:
        await service.stop()


async def next_body(queue: AbstractQueue) -> str:
    message = await await_until(lambda: queue.get(no_ack=True, fail=False), what=queue.name)
    return message.body.decode(errors="replace")


def status(run_id: str, seq: int, value: int, reason: str = "") -> M.RunEvent:
    return M.RunEvent(
        run_id=run_id,
        attempt=1,
        seq=seq,
        runner_id="runner-1",
        at_ms=seq,
        status=M.StatusChanged(status=value, reason=reason),
    )


def logs(run_id: str, seq: int, first: int, count: int) -> M.RunEvent:
    lines = [
        M.LogLine(line_no=n, text=f"line {n}", stream=M.STDOUT) for n in range(first, first + count)
    ]
    return M.RunEvent(
        run_id=run_id, attempt=1, seq=seq, runner_id="runner-1", logs=M.LogBatch(lines=lines)
    )


def test_status_and_5000_log_lines_are_applied_in_order_exactly_once(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            run_id = await bob.claimed_run()
            # Given a runner reporting RUNNING, 5,000 lines in batches of 100, then PASSED
            await bob.publish(status(run_id, 1, M.RUNNING))
            for batch in range(50):
                await bob.publish(logs(run_id, 2 + batch, batch * 100, 100))
            await bob.publish(status(run_id, 52, M.PASSED))

            # Then entities shows the run passed with every line once, in order
            run = await await_until(lambda: bob.run_with(run_id, M.PASSED), what="run passed")
            found = await bob.stub.GetLogs(E.GetLogsRequest(run_id=run_id, limit=10_000))
            assert list(found.lines) == [f"line {n}" for n in range(5000)]
            assert run.completed_at_ms == 52

    asyncio.run(main())


def test_redelivered_events_are_not_applied_twice(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            run_id = await bob.claimed_run()
            # Given every event published twice, the pause again after the resume
            paused = status(run_id, 2, M.PAUSED)
            for event in [
                status(run_id, 1, M.RUNNING),
                paused,
                logs(run_id, 3, 0, 10),
                status(run_id, 4, M.RUNNING),
                logs(run_id, 3, 0, 10),
                paused,
                status(run_id, 5, M.PASSED),
            ]:
                await bob.publish(event)

            # Then a re-applied pause would have made PASSED an illegal move from PAUSED
            await await_until(lambda: bob.run_with(run_id, M.PASSED), what="run passed")
            found = await bob.stub.GetLogs(E.GetLogsRequest(run_id=run_id, limit=100))
            assert list(found.lines) == [f"line {n}" for n in range(10)]

    asyncio.run(main())


def test_garbage_is_dead_lettered_with_an_error_and_later_events_still_apply(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            run_id = await bob.claimed_run()
            errors = await bob.channel.declare_queue(topology.ERRORS_QUEUE, durable=True)
            dead = await bob.channel.declare_queue(topology.DEAD_LETTER_QUEUE, durable=True)
            # Given a message that is no RunEvent, one the database cannot hold, then a good one
            await bob.events.publish(
                aio_pika.Message(body=b"garbage \xff\xfe", type="bob.v1.RunEvent"),
                routing_key=topology.run_event_key(run_id, "logs"),
            )
            await bob.publish(logs(run_id, 1, 2**64 - 1, 1))
            await bob.publish(status(run_id, 1, M.RUNNING))

            # Then the good event applies, both others sit raw in bob.dead, and bob.errors
            # says why
            await await_until(lambda: bob.run_with(run_id, M.RUNNING), what="run running")
            reported = [await next_body(errors), await next_body(errors)]
            assert reported == [
                "entities: dead-lettered a bob.v1.RunEvent message: undecodable bob.v1.RunEvent: "
                "Error parsing message with type 'bob.v1.RunEvent': Wire format was corrupt",
                "entities: dead-lettered a bob.v1.RunEvent message: "
                "RunEvent seq or line_no out of range",
            ]
            assert await next_body(dead) == "garbage \ufffd\ufffd"

    asyncio.run(main())


def test_events_batched_in_one_message_apply_in_order_even_when_the_batch_comes_early(
    db_url, rabbit_url
):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            run_id = await bob.claimed_run()
            # Given a runner's batch of a run's last words arriving before the batch of its
            # first ones (the first is early: held until the events before it come)
            await bob.publish_batch(
                [logs(run_id, 4, 1, 1), status(run_id, 5, M.PASSED, "all good")]
            )
            await bob.publish_batch(
                [status(run_id, 1, M.INITIALIZED), status(run_id, 2, M.RUNNING)]
                + [logs(run_id, 3, 0, 1)]
            )

            # Then every event of both applies once, in seq order
            run = await await_until(lambda: bob.run_with(run_id, M.PASSED), what="run passed")
            found = await bob.stub.GetLogs(E.GetLogsRequest(run_id=run_id, limit=10))
            assert list(found.lines) == ["line 0", "line 1"]
            assert run.completed_at_ms == 5
            assert bob.service.consumer.events_applied == 5
            assert bob.service.consumer.events_refused == 0

    asyncio.run(main())


def test_a_batch_mixing_runs_is_dead_lettered_and_one_under_another_key_refused(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            run_id, other = await bob.claimed_run(), await bob.claimed_run()
            errors = await bob.channel.declare_queue(topology.ERRORS_QUEUE, durable=True)
            # Given a batch holding an event of another run (its one MAC is one claim's),
            # then a batch of the other run signed with this run's claim
            await bob.publish_batch([status(run_id, 1, M.RUNNING), status(other, 1, M.PASSED)])
            await bob.publish_batch(
                [status(other, 1, M.RUNNING), status(other, 2, M.PASSED)],
                key=bob.secrets[run_id],
            )
            await bob.publish(status(run_id, 1, M.RUNNING))

            # Then the first is dead-lettered naming why, the second refused whole, and the
            # run's own event applies
            await await_until(lambda: bob.run_with(run_id, M.RUNNING), what="run running")
            assert await next_body(errors) == (
                "entities: dead-lettered a bob.v1.RunEvents message: "
                "RunEvents of more than one run or attempt"
            )

            async def refused() -> bool:
                return bob.service.consumer.events_refused == 2

            await await_until(refused, what="the forged batch refused")
            other_run = await bob.stub.GetRun(E.RunRef(run_id=other))
            assert other_run.status == M.INITIALIZING

    asyncio.run(main())


def test_event_failing_in_the_database_is_retried_alone_then_dead_lettered(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            bob.service.consumer.retry_pause_s = 0.01
            run_id = await bob.claimed_run()
            errors = await bob.channel.declare_queue(topology.ERRORS_QUEUE, durable=True)
            dead = await bob.channel.declare_queue(topology.DEAD_LETTER_QUEUE, durable=True)
            # Given log lines cannot be stored any more
            raw_db.execute(db_url, "DROP TABLE log_lines")
            # When a batch holds a status change and log lines
            await bob.publish(status(run_id, 1, M.RUNNING))
            await bob.publish(logs(run_id, 2, 0, 1))

            # Then the status change applies alone, and the log batch is redelivered until
            # the broker's limit dead-letters it, with a report on bob.errors
            await await_until(lambda: bob.run_with(run_id, M.RUNNING), what="run running")
            report = await next_body(errors)
            assert report.startswith(f"entities: run {run_id}: event seq 2 dead-lettered after")
            assert raw_db.missing_table_message(db_url, "log_lines") in report
            assert await next_body(dead)

    asyncio.run(main())


def test_events_of_a_deleted_pipeline_are_acked_and_ignored(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            # Given events for a run that no longer exists, then one for a live run
            await bob.publish(status("r-deleted", 1, M.RUNNING))
            run_id = await bob.claimed_run()
            await bob.publish(status(run_id, 1, M.RUNNING))

            # Then the live run moves on, and nothing is left unacked in the queue
            await await_until(lambda: bob.run_with(run_id, M.RUNNING), what="run running")
            queue = await bob.channel.declare_queue(topology.ENTITIES_EVENTS_QUEUE, passive=True)
            assert queue.declaration_result.message_count == 0

    asyncio.run(main())


def test_grpc_serves_while_the_broker_is_unreachable_and_stops_promptly(db_url):
    async def main() -> None:
        service = EntitiesService(make_settings(db_url, "amqp://guest:guest@127.0.0.1:1/"))
        await service.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                assert not service.consumer.connected.is_set()
        finally:
            started = time.monotonic()
            await service.stop()
        assert time.monotonic() - started < 5

    asyncio.run(main())


def test_the_connection_dropping_while_the_topology_is_declared_only_delays_consuming(
    db_url, rabbit_url, monkeypatch
):
    # Given entities reaching the broker through a proxy, and its connection dropping while
    # the event consumer's first declaration is in flight (as when RabbitMQ closes it with
    # INTERNAL_ERROR, using a quorum queue a moment before its leader is up)
    broker = urllib.parse.urlsplit(rabbit_url)
    declare_shared = topology.declare_shared
    in_flight: list[bool] = []

    with tcp_proxy("127.0.0.1", broker.port or 5672) as proxy:

        async def dropped_once(channel: AbstractChannel) -> AbstractQueue:
            if in_flight:
                return await declare_shared(channel)
            proxy.hold()
            declaring = asyncio.ensure_future(declare_shared(channel))
            await asyncio.sleep(0.3)
            in_flight.append(not declaring.done())
            proxy.cut()
            proxy.restore()
            return await declaring

        monkeypatch.setattr(topology, "declare_shared", dropped_once)
        proxied = broker._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}").geturl()

        async def main() -> None:
            # When entities starts: the consumer is connected on the restored connection
            # (running_service waits for that)
            async with running_service(db_url, proxied) as bob:
                assert in_flight == [True]
                # Then events are applied as ever, and the dead-job consumer is there too
                run_id = await bob.claimed_run()
                await bob.publish(status(run_id, 1, M.RUNNING))
                await bob.publish(logs(run_id, 2, 0, 3))
                await bob.publish(status(run_id, 3, M.PASSED))
                await await_until(lambda: bob.run_with(run_id, M.PASSED), what="run passed")
                found = await bob.stub.GetLogs(E.GetLogsRequest(run_id=run_id, limit=10))
                assert list(found.lines) == ["line 0", "line 1", "line 2"]
                await await_until(
                    lambda: _consumers(bob.channel, topology.DEAD_JOBS_QUEUE),
                    what="the dead-job consumer",
                )

        asyncio.run(main())


async def _consumers(channel: AbstractChannel, name: str) -> int | None:
    queue = await channel.declare_queue(name, passive=True)
    return queue.declaration_result.consumer_count or None


def test_lease_renewals_register_runners_and_their_types(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            # Given an idle shell runner's lease renewal, describing its node (with a load
            # it could not measure)
            node = M.NodeInfo(
                hostname="build-1",
                cpu_count=4,
                cpu_load=float("nan"),
                memory_free_bytes=2**31,
                memory_total_bytes=2**64 - 1,
            )
            before_ms = int(time.time() * 1000)
            await bob.stub.RenewLeases(
                E.RenewLeasesRequest(
                    runner_id="shell-1", runner_type="shell", capacity=3, node=node
                )
            )

            # Then entities lists the runner as of that renewal
            reply = await bob.stub.ListRunners(empty_pb2.Empty())
            [runner] = reply.runners
            assert (runner.runner_type, runner.capacity) == ("shell", 3)
            assert runner.last_seen_ms >= before_ms
            assert list(runner.run_ids) == []
            assert runner.node == M.NodeInfo(
                hostname="build-1",
                cpu_count=4,
                cpu_load=0.0,
                memory_free_bytes=2**31,
                memory_total_bytes=2**63 - 1,
            )
            # and runs of a pipeline granted its type may now be routed to it
            await bob.claimed_run()
            await bob.stub.SetPipelineRunnerTypes(
                E.SetPipelineRunnerTypesRequest(group="dev", name="app", runner_types=["shell"])
            )
            job = await bob.stub.CreateRun(
                E.CreateRunRequest(group="dev", name="app", runner_type="shell")
            )
            assert job.runner_type == "shell"
            # and a later renewal, naming its runs, is what the list shows next
            await bob.stub.RenewLeases(
                E.RenewLeasesRequest(
                    runner_id="shell-1",
                    runner_type="shell",
                    capacity=3,
                    runs=[E.RunAttempt(run_id=job.run_id, attempt=1)],
                )
            )
            [runner] = (await bob.stub.ListRunners(empty_pb2.Empty())).runners
            assert list(runner.run_ids) == [job.run_id]
            assert runner.node.hostname == "build-1"

    asyncio.run(main())


def test_a_runner_describing_itself_beyond_32_bits_is_held_at_the_limit_on_both_databases(
    db_url, rabbit_url
):
    async def main() -> None:
        async with running_service(db_url, rabbit_url) as bob:
            # When a runner says it has 2^32-1 slots and cores (uint32 on the wire)
            huge = 2**32 - 1
            await bob.stub.RenewLeases(
                E.RenewLeasesRequest(
                    runner_id="big-1",
                    runner_type="docker",
                    capacity=huge,
                    node=M.NodeInfo(hostname="big", cpu_count=huge),
                )
            )
            # Then it is recorded at the largest 32-bit value, on PostgreSQL as on SQLite
            [runner] = (await bob.stub.ListRunners(empty_pb2.Empty())).runners
            assert (runner.capacity, runner.node.cpu_count) == (2**31 - 1, 2**31 - 1)

    asyncio.run(main())
