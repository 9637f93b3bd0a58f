"""Step and pipeline timeouts: exceeding one fails the run with a message naming the
step and the limit, and what ran is gone; on both executors."""

from __future__ import annotations

import asyncio
import time

from bob_pb import messages_pb2, pipeline_pb2
from devcluster.test_image import IMAGE
from tests.runner.harness import make_job, no_container_left, world

Step = pipeline_pb2.Step


def test_a_step_over_its_timeout_fails_the_run_naming_the_step_and_the_limit(
    runner_type, rabbit_url, request
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            # Given a step that would sleep far longer than its timeout
            job = make_job(
                IMAGE,
                [Step(cmd="echo one", timeout=5), Step(cmd="sleep 300", timeout=1), "echo never"],
                runner_type=runner_type,
            )
            started = time.monotonic()
            await w.publish(job)
            final = await w.tap.terminal(job.run_id, timeout=20)

            # Then it is cut off at its limit and the run fails saying so
            assert final.status == messages_pb2.FAILED
            assert final.reason == "step 2 exceeded its timeout of 1 s"
            assert time.monotonic() - started < 10
            assert "never" not in w.tap.texts(job.run_id)
            assert f"[bob] run failed: {final.reason}" in w.tap.texts(job.run_id)
            if runner_type == "docker":
                docker_client = request.getfixturevalue("docker_client")
                await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


def test_a_run_over_the_pipeline_timeout_fails_naming_the_step_it_was_in(runner_type, rabbit_url):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            job = make_job(
                IMAGE, ["sleep 0.5", "sleep 300", "echo never"], timeout=2, runner_type=runner_type
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id, timeout=20)
            assert final.status == messages_pb2.FAILED
            assert final.reason == "the run exceeded the pipeline timeout of 2 s during step 2"

    asyncio.run(scenario())


def test_steps_within_their_timeouts_pass(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(test_image, [Step(cmd="sleep 0.2", timeout=5), "echo ok"], timeout=30)
            await w.publish(job)
            assert (await w.tap.terminal(job.run_id)).status == messages_pb2.PASSED

    asyncio.run(scenario())


def test_a_paused_run_still_times_out(rabbit_url, test_image, docker_client):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(test_image, [Step(cmd="echo waiting; sleep 300", timeout=2)])
            await w.publish(job)
            await w.tap.wait_for(lambda: "waiting" in w.tap.texts(job.run_id), "the step")
            await w.control(job.run_id, messages_pb2.PAUSE)
            await w.tap.wait_for(
                lambda: messages_pb2.PAUSED in w.tap.statuses(job.run_id), "PAUSED"
            )
            final = await w.tap.terminal(job.run_id, timeout=20)
            assert final.reason == "step 1 exceeded its timeout of 2 s"
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())
