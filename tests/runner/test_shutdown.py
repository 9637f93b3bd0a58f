"""Shutdown: take no new work, drain with a deadline, hand the rest back."""

from __future__ import annotations

import asyncio
import subprocess
import time

from bob_common import amqp
from bob_common.config import RunnerSettings
from bob_pb import messages_pb2
from tests.conftest import fresh_vhost
from tests.runner.harness import (
    claim_server,
    containers_of,
    jobs_waiting,
    make_job,
    runner_env,
    running_runner,
    world,
)


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


def test_a_shutdown_while_the_broker_is_gone_still_ends_within_seconds(
    rabbitmq_available, test_image, monkeypatch
):
    monkeypatch.setattr(amqp, "CANCEL_TIMEOUT_S", 0.5)

    async def scenario() -> None:
        with fresh_vhost() as url:
            async with claim_server() as (addr, _):
                settings = RunnerSettings.from_env(runner_env(url, addr))
                async with running_runner(settings) as (service, task):
                    # Given a runner whose broker connection is gone for good
                    vhost = url.rsplit("/", 1)[1]
                    gone = subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost],
                                          capture_output=True, timeout=60)
                    assert gone.returncode == 0, gone.stderr
                    # When it is told to stop
                    started = time.monotonic()
                    service.request_shutdown("test signal")
                    # Then it stops cleanly, without waiting for the broker to come back
                    await asyncio.wait_for(asyncio.shield(task), 20)
                    assert time.monotonic() - started < 5

    asyncio.run(scenario())
