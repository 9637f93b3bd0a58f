"""Heartbeats: on bob.events at start-up and every few seconds, naming the runs the
runner executes."""

from __future__ import annotations

import asyncio
import os
import socket

from aio_pika.abc import AbstractIncomingMessage

from bob_common import topology
from bob_common.amqp import decode
from bob_pb import messages_pb2
from tests.runner.harness import TEST_TUNING, make_job, world
from tests.waiting import await_until


def test_heartbeats_say_who_the_runner_is_and_which_runs_it_executes(rabbit_url, test_image):
    beats: list[tuple[str, messages_pb2.RunnerHeartbeat]] = []

    async def on_beat(message: AbstractIncomingMessage) -> None:
        beats.append((message.routing_key, decode(message, messages_pb2.RunnerHeartbeat)))

    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=3) as w:
            # A queue bound after start-up: the first beat may have gone before it.
            queue = await w.channel.declare_queue(exclusive=True)
            await queue.bind(await topology.declare_events(w.channel), routing_key="runner.#")
            await queue.consume(on_beat, no_ack=True)
            job = make_job(test_image, ["echo busy; sleep 300"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "busy" in w.tap.texts(job.run_id), "the run")

            def busy_beat() -> bool:
                return any(list(b.run_ids) == [job.run_id] for _, b in beats)

            await w.tap.wait_for(busy_beat, "a heartbeat naming the run",
                                 timeout=5 * TEST_TUNING.heartbeat_s)
            key, beat = beats[-1]
            assert key == topology.runner_heartbeat_key(w.settings.runner_id)
            assert (beat.runner_id, beat.runner_type, beat.capacity) == (
                w.settings.runner_id, "docker", 3
            )
            assert beat.at_ms > 0
            # And the node it runs on, for Bob's cluster info
            assert beat.node.hostname == socket.gethostname()
            assert beat.node.cpu_count == os.cpu_count()
            assert 0 < beat.node.memory_free_bytes <= beat.node.memory_total_bytes

            await w.control(job.run_id, messages_pb2.STOP)
            await w.tap.terminal(job.run_id)
            seen = len(beats)
            await w.tap.wait_for(lambda: len(beats) > seen and not beats[-1][1].run_ids,
                                 "a heartbeat with no runs", timeout=5 * TEST_TUNING.heartbeat_s)

    asyncio.run(scenario())


def test_the_first_heartbeat_goes_out_at_start_up(rabbit_url, test_image):
    async def scenario() -> None:
        # Entities' queue, which the runner declares before it beats, keeps what was
        # published before anyone consumed: the start-up beat is in it.
        async with world(rabbit_url) as w:
            queue = await w.channel.declare_queue(topology.ENTITIES_EVENTS_QUEUE, passive=True)

            async def a_beat() -> messages_pb2.RunnerHeartbeat | None:
                while (message := await queue.get(no_ack=True, fail=False)) is not None:
                    if message.routing_key.startswith("runner."):
                        return decode(message, messages_pb2.RunnerHeartbeat)
                return None

            beat = await await_until(a_beat, timeout=5, what="a heartbeat")
            assert beat.runner_id == w.settings.runner_id
            assert list(beat.run_ids) == []

    asyncio.run(scenario())
