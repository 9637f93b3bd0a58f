"""Entities is the only sender of commands: a stop, pause or resume it records is owed to
the bob.control fanout (its outbox) and broadcast from there, at once or, when the broker
was away, by the sweep once it is back. Against a real RabbitMQ and SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aio_pika.abc import AbstractQueue

from bob_common import amqp, topology
from bob_pb import entities_pb2, messages_pb2
from tests.conftest import RABBIT_HOST
from tests.entities.test_events import running_service
from tests.support.tcp_proxy import tcp_proxy
from tests.waiting import await_until

E = entities_pb2
M = messages_pb2


@contextlib.asynccontextmanager
async def control_tap(rabbit_url: str) -> AsyncIterator[AbstractQueue]:
    """A queue of the test's own on the control fanout, as each runner has one."""
    connection = await amqp.connect(rabbit_url, "entities-test-control-tap")
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(await topology.declare_control(channel))
        yield queue


async def next_control(queue: AbstractQueue, timeout: float = 10) -> M.Control:
    message = await await_until(
        lambda: queue.get(no_ack=True, fail=False), timeout=timeout, what="a control"
    )
    return amqp.decode(message, M.Control)


def test_stop_pause_and_resume_of_a_claimed_run_are_broadcast_by_entities(db_url, rabbit_url):
    async def scenario() -> None:
        async with running_service(db_url, rabbit_url) as bob, control_tap(rabbit_url) as tap:
            # Given a run a runner has claimed
            run_id = await bob.claimed_run()
            # When it is paused, resumed and stopped through entities
            await bob.stub.SetRunPaused(E.SetRunPausedRequest(run_id=run_id, paused=True))
            # Then each command goes out on the control fanout, in order
            assert await next_control(tap) == M.Control(run_id=run_id, action=M.PAUSE)
            await bob.stub.SetRunPaused(E.SetRunPausedRequest(run_id=run_id, paused=False))
            assert await next_control(tap) == M.Control(run_id=run_id, action=M.RESUME)
            await bob.stub.StopRun(E.RunRef(run_id=run_id))
            assert await next_control(tap) == M.Control(run_id=run_id, action=M.STOP)

    asyncio.run(scenario())


def test_a_stop_recorded_while_the_broker_is_unreachable_is_broadcast_once_it_is_back(
    db_url, rabbit_url
):
    host, port = RABBIT_HOST.split(":")
    with tcp_proxy(host, int(port)) as proxy:
        # Entities alone reaches the broker through the proxy.
        proxied = rabbit_url.replace(RABBIT_HOST, f"127.0.0.1:{proxy.port}")

        async def scenario() -> None:
            async with (
                running_service(db_url, proxied, sweep_s=0.5) as bob,
                control_tap(rabbit_url) as tap,
            ):
                run_id = await bob.claimed_run()
                # Given entities cut off from the broker
                proxy.cut()
                # When a run is stopped, the stop is recorded and answered at once
                reply = await asyncio.wait_for(bob.stub.StopRun(E.RunRef(run_id=run_id)), 5)
                assert reply.run.status == M.INITIALIZING and reply.broadcast
                # (and the runner's lease renewal answers it meanwhile)
                renewal = await bob.stub.RenewLeases(
                    E.RenewLeasesRequest(
                        runner_id="runner-1", runs=[E.RunAttempt(run_id=run_id, attempt=1)]
                    )
                )
                assert [i.order for i in renewal.instructions] == [E.ORDER_STOP]
                # But nothing is broadcast while the broker is unreachable
                await asyncio.sleep(2)
                assert await tap.get(no_ack=True, fail=False) is None
                # Then, once the broker is reachable again, the outbox broadcasts the stop
                proxy.restore()
                control = await next_control(tap, timeout=60)
                assert control == M.Control(run_id=run_id, action=M.STOP)

        asyncio.run(scenario())
