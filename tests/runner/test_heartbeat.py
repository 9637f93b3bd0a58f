"""Heartbeats: the lease renewal, at start-up and every few seconds, with runs or without,
is the runner's one liveness signal: it says who the runner is and which runs it
executes."""

from __future__ import annotations

import asyncio
import os
import socket

from bob_pb import entities_pb2, messages_pb2
from tests.runner.harness import TEST_TUNING, make_job, world
from tests.waiting import await_until


def test_heartbeats_say_who_the_runner_is_and_which_runs_it_executes(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=3) as w:
            assert w.entities is not None
            renewals = w.entities.renewals
            job = make_job(test_image, ["echo busy; sleep 300"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "busy" in w.tap.texts(job.run_id), "the run")

            def busy_beat() -> bool:
                return any([r.run_id for r in b.runs] == [job.run_id] for b in renewals)

            await w.tap.wait_for(
                busy_beat, "a renewal naming the run", timeout=5 * TEST_TUNING.heartbeat_s
            )
            beat = renewals[-1]
            assert (beat.runner_id, beat.runner_type, beat.capacity) == (
                w.settings.runner_id,
                "docker",
                3,
            )
            # And the node it runs on, for Bob's cluster info
            assert beat.node.hostname == socket.gethostname()
            assert beat.node.cpu_count == os.cpu_count()
            assert 0 < beat.node.memory_free_bytes <= beat.node.memory_total_bytes

            await w.control(job.run_id, messages_pb2.STOP)
            await w.tap.terminal(job.run_id)
            seen = len(renewals)
            await w.tap.wait_for(
                lambda: len(renewals) > seen and not renewals[-1].runs,
                "a renewal with no runs",
                timeout=5 * TEST_TUNING.heartbeat_s,
            )

    asyncio.run(scenario())


def test_the_first_heartbeat_goes_out_at_start_up(rabbit_url, test_image):
    async def scenario() -> None:
        # An idle runner renews too: that is how entities sees it.
        async with world(rabbit_url) as w:
            assert w.entities is not None

            async def a_beat() -> entities_pb2.RenewLeasesRequest | None:
                return w.entities.renewals[0] if w.entities.renewals else None

            beat = await await_until(a_beat, timeout=5, what="a renewal")
            assert (beat.runner_id, beat.runner_type) == (w.settings.runner_id, "docker")
            assert list(beat.runs) == []

    asyncio.run(scenario())
