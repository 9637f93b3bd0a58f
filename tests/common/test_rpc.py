"""The interceptors of bob_common.rpc over a real in-process gRPC server: a call gets a
deadline unless its caller set one, carries the run it is about, and the server logs
what it does meanwhile with that run named."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import empty_pb2

from bob_common import rpc
from bob_common.logs import configure_logging
from bob_pb import entities_pb2, entities_pb2_grpc
from entities_svc.db import DatabaseThread
from entities_svc.server import start_server

TIMEOUT_S = 3.0
log = logging.getLogger("tests.rpc")


@dataclass
class Seen:
    """What the servicer saw of one call."""

    run_metadata: str | None
    run_id: str
    time_remaining: float | None


@dataclass
class Servicer(entities_pb2_grpc.EntitiesServicer):
    """Two rpcs, one whose request has a run id and one whose request has none."""

    db: DatabaseThread = field(default_factory=DatabaseThread)
    seen: list[Seen] = field(default_factory=list)

    def _saw(self, context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        self.seen.append(
            Seen(metadata.get(rpc.RUN_ID_KEY), rpc.current_run(), context.time_remaining())
        )
        log.warning("handling %s", type(self).__name__)

    async def GetStats(self, request, context):
        self._saw(context)
        return entities_pb2.Stats()

    async def GetRun(self, request, context):
        self._saw(context)
        # What the database thread logs names the run too.
        await self.db.call(log.warning, "in the database thread")
        return entities_pb2.Run(id=request.run_id)


@contextlib.asynccontextmanager
async def serving(
    *interceptors: grpc.aio.ClientInterceptor,
) -> AsyncIterator[tuple[entities_pb2_grpc.EntitiesStub, Servicer]]:
    servicer = Servicer()
    server, port, _ = await start_server(servicer, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=list(interceptors)
        ) as channel:
            yield entities_pb2_grpc.EntitiesStub(channel), servicer
    finally:
        await server.stop(None)
        await servicer.db.close()


@pytest.fixture
def logged():
    """What configure_logging's handler writes, as text."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("entities")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_call_without_a_deadline_gets_the_configured_one():
    async def main() -> list[Seen]:
        async with serving(rpc.ClientInterceptor(TIMEOUT_S)) as (stub, servicer):
            await stub.GetStats(empty_pb2.Empty())
            await stub.GetStats(empty_pb2.Empty(), timeout=60)
        async with serving() as (stub, plain):
            await stub.GetStats(empty_pb2.Empty())
        return servicer.seen + plain.seen

    configured, own, none = (s.time_remaining for s in asyncio.run(main()))
    assert configured is not None and 0 < configured <= TIMEOUT_S + 1
    assert own is not None and 50 < own <= 61
    # Without the interceptor, no deadline: what the interceptor is for.
    assert none is None


def test_a_call_about_a_run_carries_it_and_the_server_logs_it(logged):
    async def main() -> list[Seen]:
        async with serving(rpc.ClientInterceptor(TIMEOUT_S)) as (stub, servicer):
            with rpc.about_run("r1"):
                await stub.GetStats(empty_pb2.Empty())
            assert rpc.current_run() == ""
            await stub.GetStats(empty_pb2.Empty())
            # A request with a run id is about that run, unless told otherwise.
            await stub.GetRun(entities_pb2.RunRef(run_id="r2"))
            return servicer.seen

    inside, outside, by_request = asyncio.run(main())
    assert (inside.run_metadata, inside.run_id) == ("r1", "r1")
    assert (outside.run_metadata, outside.run_id) == (None, "")
    assert (by_request.run_metadata, by_request.run_id) == ("r2", "r2")
    lines = logged.getvalue().splitlines()
    assert [line.split(" ", 3)[3] for line in lines] == [
        "WARNING tests.rpc run=r1: handling Servicer",
        "WARNING tests.rpc: handling Servicer",
        "WARNING tests.rpc run=r2: handling Servicer",
        "WARNING tests.rpc run=r2: in the database thread",
    ]


def test_the_server_takes_the_run_from_the_request_when_no_metadata_says(logged):
    async def main() -> list[Seen]:
        # A client without the interceptor (grpcurl, say).
        async with serving() as (stub, servicer):
            await stub.GetRun(entities_pb2.RunRef(run_id="r3"))
            await stub.GetRun(entities_pb2.RunRef(run_id="r3"), metadata=((rpc.RUN_ID_KEY, "r4"),))
            return servicer.seen

    from_request, from_metadata = asyncio.run(main())
    assert (from_request.run_metadata, from_request.run_id) == (None, "r3")
    assert (from_metadata.run_metadata, from_metadata.run_id) == ("r4", "r4")
    assert "run=r3: handling" in logged.getvalue()


def test_a_log_line_outside_any_run_names_none(logged):
    log.warning("idle")
    with rpc.about_run("r5"):
        log.warning("busy")
    log.warning("idle again")
    ends = [line.split(" ", 4)[4] for line in logged.getvalue().splitlines()]
    assert ends == ["tests.rpc: idle", "tests.rpc run=r5: busy", "tests.rpc: idle again"]


def test_the_retry_tables_nest():
    # What the API answers 503 for, a runner retries too.
    assert rpc.RETRY_LATER < rpc.UNDECIDED
    assert grpc.StatusCode.NOT_FOUND not in rpc.UNDECIDED
