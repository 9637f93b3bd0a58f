"""rpc.with_defaults: a stub whose calls get what rpc.ClientInterceptor gives them (a
deadline unless the caller set one, the run they are about), over a real server."""

from __future__ import annotations

import asyncio

from google.protobuf import empty_pb2

from bob_common import rpc
from bob_pb import entities_pb2
from tests.common.test_rpc import TIMEOUT_S, Seen, serving


def test_a_stub_with_defaults_gives_its_calls_what_the_interceptor_does():
    async def main() -> list[Seen]:
        async with serving() as (plain, servicer):
            stub = rpc.with_defaults(plain, TIMEOUT_S)
            await stub.GetStats(empty_pb2.Empty())
            await stub.GetStats(empty_pb2.Empty(), timeout=60)
            with rpc.about_run("r1"):
                await stub.GetStats(empty_pb2.Empty())
            await stub.GetRun(entities_pb2.RunRef(run_id="r2"))
            # What the caller sends is kept.
            await stub.GetRun(entities_pb2.RunRef(run_id="r3"), metadata=((rpc.RUN_ID_KEY, "r4"),))
            return servicer.seen

    configured, own, about, by_request, sent = asyncio.run(main())
    # As in test_rpc: the deadline crosses the wire rounded up, so it may read a little over.
    assert configured.time_remaining is not None and 0 < configured.time_remaining <= TIMEOUT_S + 1
    assert own.time_remaining is not None and 50 < own.time_remaining <= 61
    assert (configured.run_metadata, configured.run_id) == (None, "")
    assert (about.run_metadata, about.run_id) == ("r1", "r1")
    assert (by_request.run_metadata, by_request.run_id) == ("r2", "r2")
    assert (sent.run_metadata, sent.run_id) == ("r4", "r4")


def test_a_stub_with_defaults_is_a_copy_and_leaves_the_stub_alone():
    async def main() -> tuple[object, object]:
        async with serving() as (plain, _):
            stub = rpc.with_defaults(plain, TIMEOUT_S)
            return type(stub), plain.GetStats

    kind, method = asyncio.run(main())
    assert kind.__name__ == "EntitiesStub"
    assert not isinstance(method, rpc._WithDefaults)
