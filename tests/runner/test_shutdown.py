"""Shutdown: take no new work, drain with a deadline, hand the rest back."""

from __future__ import annotations

import asyncio
import time

from bob_pb import messages_pb2
from tests.runner.harness import containers_of, jobs_waiting, make_job, world


def test_running_jobs_finish_within_the_drain_time_and_no_new_job_starts(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_drain_s=30) as w:
            # Given a run in progress
            job = make_job(test_image, ["sleep 1; echo done"])
            await w.publish(job)
            await w.tap.wait_for(lambda: w.tap.statuses(job.run_id), "the run to start")

            # When the runner is told to stop, and another job arrives
            w.signal()
            late = make_job(test_image, ["echo too late"])
            await w.publish(late)
            await w.stopped()

            # Then the running one finished, and the late one waits for another runner
            assert w.tap.final(job.run_id).status == messages_pb2.PASSED
            assert w.tap.of(late.run_id) == []
            assert await jobs_waiting(w.channel) == 1

    asyncio.run(scenario())


def test_a_job_still_running_at_the_drain_limit_is_handed_back(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_drain_s=0.5) as w:
            job = make_job(test_image, ["sleep 300"])
            await w.publish(job)
            await w.tap.wait_for(lambda: w.tap.statuses(job.run_id), "the run to start")

            started = time.monotonic()
            w.signal()
            await w.stopped()

            assert time.monotonic() - started < 10
            assert w.tap.final(job.run_id) is None  # not ended: another runner may take it
            assert await containers_of(docker_client, job.run_id) == []
            assert await jobs_waiting(w.channel) == 1

    asyncio.run(scenario())


def test_a_second_signal_skips_the_drain(rabbit_url, test_image, docker_client):
    async def scenario() -> None:
        async with world(rabbit_url, runner_drain_s=600) as w:
            job = make_job(test_image, ["sleep 300"])
            await w.publish(job)
            await w.tap.wait_for(lambda: w.tap.statuses(job.run_id), "the run to start")

            started = time.monotonic()
            w.signal()
            w.signal()
            await w.stopped(timeout=30)

            assert time.monotonic() - started < 10
            assert await containers_of(docker_client, job.run_id) == []
            assert await jobs_waiting(w.channel) == 1

    asyncio.run(scenario())
