"""WatchEvents, the journal as one stream (entities_svc/watch.py), through a real in-process
server and database; and the API's follower of run statuses (api_server/run_statuses.py)
on it, across a restart of that server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from api_server import run_statuses
from bob_pb import entities_pb2 as E
from bob_pb import entities_pb2_grpc, messages_pb2
from entities_svc import journal, watch
from entities_svc.db import DatabaseThread
from entities_svc.job_queue import JobQueue
from entities_svc.server import start_server
from entities_svc.servicer import EntitiesServicer
from tests.entities.support import LEASE_MS
from tests.entities.test_servicer import PIPELINE, backing
from tests.waiting import await_until

NEWEST = 2**63 - 1
# Generous: a loaded 2-core machine.
PAGE_S = 15.0


@contextlib.asynccontextmanager
async def entities(db_url: str, rabbit_url: str) -> AsyncIterator[_Entities]:
    async with backing(db_url, rabbit_url) as (db, jobs):
        running = _Entities(db, jobs)
        try:
            await running.start("127.0.0.1:0")
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                running.stub = entities_pb2_grpc.EntitiesStub(channel)
                stub = running.stub
                await stub.PutResourceProvider(E.Plugin(name="git", url="http://127.0.0.1:1"))
                await stub.PutArtifactStore(E.Plugin(name="s3", url="http://127.0.0.1:2"))
                await stub.PutPipeline(
                    E.PutPipelineRequest(group="dev", name="app", pipeline=PIPELINE)
                )
                yield running
        finally:
            await running.stop()


class _Entities:
    """An entities server that can be stopped (as service.py stops it) and started again
    on the same port and database."""

    def __init__(self, db: DatabaseThread, jobs: JobQueue) -> None:
        self._db = db
        self.servicer_db = db
        self._jobs = jobs
        self.port = 0
        self.server: grpc.aio.Server | None = None
        self.servicer: EntitiesServicer | None = None
        self.stub: entities_pb2_grpc.EntitiesStub

    async def start(self, addr: str) -> None:
        self.servicer = EntitiesServicer(self._db, self._jobs, lease_ms=LEASE_MS)
        self.server, self.port, _ = await start_server(self.servicer, addr)

    async def stop(self) -> None:
        if self.server is not None and self.servicer is not None:
            self.servicer.watchers.stop()
            await self.server.stop(5)
            self.server = None

    async def create_run(self) -> str:
        return (await self.stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))).run_id


@contextlib.asynccontextmanager
async def following(
    stub: entities_pb2_grpc.EntitiesStub,
) -> AsyncIterator[run_statuses.RunStatuses]:
    """The API's follower of run statuses, on `stub`, for the block."""
    statuses = run_statuses.RunStatuses()
    task = asyncio.create_task(run_statuses.follow(statuses, stub, 5.0))
    try:
        yield statuses
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _next(stream) -> E.ListEventsResponse:
    return await asyncio.wait_for(stream.read(), PAGE_S)


def test_a_stream_sends_what_is_after_its_position_at_once_then_new_events(db_url, rabbit_url):
    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            everything = await bob.stub.ListEvents(E.ListEventsRequest())
            assert len(everything.events) >= 3
            # From a position: what is after it, at once, as ListEvents would answer it.
            after = everything.events[0].id
            stream = bob.stub.WatchEvents(E.WatchEventsRequest(after_id=after))
            first = await _next(stream)
            assert list(first.events) == list(everything.events[1:])
            assert first.newest_id == everything.newest_id

            # A new event is pushed, in a page of its own.
            run_id = await bob.create_run()
            pushed = await _next(stream)
            assert [(e.run_id, e.run_status) for e in pushed.events] == [
                (run_id, messages_pb2.PENDING)
            ]
            assert pushed.newest_id == pushed.events[-1].id > first.newest_id
            stream.cancel()

    asyncio.run(scenario())


def test_a_stream_from_beyond_the_end_tells_where_the_journal_stands_and_follows_on(
    db_url, rabbit_url
):
    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            now = (await bob.stub.ListEvents(E.ListEventsRequest(after_id=NEWEST))).newest_id
            stream = bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST))
            first = await _next(stream)
            assert list(first.events) == [] and first.newest_id == now > 0
            run_id = await bob.create_run()
            pushed = await _next(stream)
            assert [e.run_id for e in pushed.events] == [run_id]
            assert pushed.events[0].id > now
            stream.cancel()

    asyncio.run(scenario())


def test_two_watchers_each_get_every_event(db_url, rabbit_url):
    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            streams = [bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST)) for _ in "ab"]
            starts = [(await _next(s)).newest_id for s in streams]
            assert starts[0] == starts[1]
            runs = [await bob.create_run() for _ in range(3)]
            for stream in streams:
                seen: list[str] = []
                while len(seen) < len(runs):
                    seen += [e.run_id for e in (await _next(stream)).events]
                assert seen == runs
                stream.cancel()

    asyncio.run(scenario())


def test_a_quiet_stream_gets_empty_pages_at_its_position(db_url, rabbit_url, monkeypatch):
    monkeypatch.setattr(watch, "KEEPALIVE_S", 0.2)

    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            stream = bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST))
            position = (await _next(stream)).newest_id
            for _ in range(2):
                quiet = await _next(stream)
                assert list(quiet.events) == [] and quiet.newest_id == position
            stream.cancel()

    asyncio.run(scenario())


def test_watchers_are_bounded_per_caller_and_a_cancelled_one_frees_its_place(
    db_url, rabbit_url, monkeypatch
):
    monkeypatch.setattr(watch, "MAX_PER_CALLER", 2)

    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            assert bob.servicer is not None
            held = [bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST)) for _ in "ab"]
            for stream in held:
                await _next(stream)
            one_too_many = bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _next(one_too_many)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 WatchEvents streams" in refused.value.details()

            # The client cancels: entities lets the stream go, and its place with it.
            held[0].cancel()

            async def released() -> bool:
                assert bob.servicer is not None
                return len(bob.servicer.watchers) == 1

            await await_until(released, timeout=PAGE_S, what="the cancelled stream to end")
            again = bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST))
            assert (await _next(again)).newest_id > 0
            again.cancel()
            held[1].cancel()

    asyncio.run(scenario())


def test_streams_end_unavailable_when_entities_stops(db_url, rabbit_url):
    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            stream = bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST))
            await _next(stream)
            stopping = asyncio.get_running_loop().time()
            await bob.stop()
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await _next(stream)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "entities is stopping" in ended.value.details()
            # Not held for the server's grace period (5 s).
            took = asyncio.get_running_loop().time() - stopping
            print(f"\nwatch: stream ended {took:.2f} s after entities began to stop")
            assert took < 5

    asyncio.run(scenario())


def test_the_follower_of_run_statuses_reconnects_after_entities_restarts(
    db_url, rabbit_url, monkeypatch, caplog
):
    monkeypatch.setattr(run_statuses, "RETRY_S", 0.1)
    caplog.set_level("INFO", logger=run_statuses.__name__)

    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob, following(bob.stub) as statuses:

            async def live() -> bool:
                return statuses.live

            async def known(run_id: str, status: int) -> bool:
                return statuses.status(run_id) == status

            await await_until(live, timeout=PAGE_S, what="the follower to be live")
            before = await bob.create_run()
            await await_until(lambda: known(before, messages_pb2.PENDING), timeout=PAGE_S)

            # Entities stops: the follower is no longer live, and forgets what may change.
            await bob.stop()

            async def lost() -> bool:
                return not statuses.live

            await await_until(lost, timeout=PAGE_S, what="the follower to notice")
            assert statuses.status(before) is None
            # Started again on the same port and database: the follower follows on.
            await bob.start(f"127.0.0.1:{bob.port}")
            await await_until(live, timeout=PAGE_S, what="the follower to reconnect")
            after = await bob.create_run()
            await await_until(lambda: known(after, messages_pb2.PENDING), timeout=PAGE_S)
            follows = [r for r in caplog.messages if r.startswith("following entities' journal")]
            assert len(follows) == 2, caplog.messages
            assert any("stopped following" in r for r in caplog.messages)

    asyncio.run(scenario())


def _append_many(count: int) -> None:
    for i in range(count):
        journal.append("Pipeline", "WatchTest", f"{i:06d}" + "x" * (journal.MESSAGE_MAX - 6))


def test_a_caller_that_does_not_keep_up_is_ended_and_may_resume(db_url, rabbit_url, monkeypatch):
    monkeypatch.setattr(watch, "WRITE_TIMEOUT_S", 1.0)
    # Pages of ~1 MiB each, more than gRPC lets wait unread between the two ends.
    count = 8 * journal.PAGE_MAX

    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            assert bob.servicer is not None
            stream = bob.stub.WatchEvents(E.WatchEventsRequest(after_id=NEWEST))
            start = (await _next(stream)).newest_id
            await bob.servicer_db.call(_append_many, count)

            # The caller reads nothing: entities ends its stream, holding no more of it.
            async def ended() -> bool:
                assert bob.servicer is not None
                return len(bob.servicer.watchers) == 0

            await await_until(ended, timeout=PAGE_S * 2, what="the stalled stream to end")
            taken: list[E.ClusterEvent] = []
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                while True:
                    taken += (await _next(stream)).events
            # RESOURCE_EXHAUSTED when its status could go, else the call is dropped.
            assert cut.value.code() in (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.CANCELLED,
            ), cut.value
            how = cut.value.code().name
            print(f"\nwatch: a stalled caller was cut ({how}) after {len(taken)} of {count} events")
            assert len(taken) < count

            # It resumes from what it took and gets the rest.
            resumed = bob.stub.WatchEvents(
                E.WatchEventsRequest(after_id=taken[-1].id if taken else start)
            )
            while len(taken) < count:
                taken += (await _next(resumed)).events
            resumed.cancel()
            assert [int(e.message[:6]) for e in taken] == list(range(count))

    asyncio.run(scenario())


def test_the_follower_takes_a_silent_stream_for_lost_and_reconnects(
    db_url, rabbit_url, monkeypatch, caplog
):
    # Entities' quiet-stream pages come far apart here, and the follower waits little
    # for them: each stream it opens falls silent, and it must reconnect each time.
    monkeypatch.setattr(watch, "KEEPALIVE_S", 60.0)
    monkeypatch.setattr(run_statuses, "SILENCE_S", 0.5)
    monkeypatch.setattr(run_statuses, "RETRY_S", 0.1)
    caplog.set_level("INFO", logger=run_statuses.__name__)

    async def scenario() -> None:
        async with entities(db_url, rabbit_url) as bob:
            async with following(bob.stub) as statuses:

                async def reconnected() -> bool:
                    starts = [m for m in caplog.messages if m.startswith("following entities'")]
                    return len(starts) >= 2 and statuses.live

                await await_until(reconnected, timeout=PAGE_S, what="a reconnect")
            assert any("stopped following" in m and "fell silent" in m for m in caplog.messages)

            # Every stream the follower left was let go by entities.
            async def released() -> bool:
                assert bob.servicer is not None
                return len(bob.servicer.watchers) == 0

            await await_until(released, timeout=PAGE_S, what="the streams to end")

    asyncio.run(scenario())
