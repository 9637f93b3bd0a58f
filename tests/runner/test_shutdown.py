"""Shutdown: take no new work, drain with a deadline, release the rest to entities."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time

from bob_common import amqp
from bob_common.config import RunnerSettings
from bob_pb import messages_pb2
from devcluster.cluster import free_port
from tests.conftest import fresh_vhost
from tests.runner.harness import (
    containers_of,
    entities_server,
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


def test_a_run_still_going_at_the_drain_limit_is_released_to_entities(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_drain_s=0.5) as w:
            job = make_job(test_image, ["sleep 300"], attempt=3)
            await w.publish(job)
            await w.tap.wait_for(lambda: w.tap.statuses(job.run_id), "the run to start")

            started = time.monotonic()
            w.signal()
            await w.stopped()

            assert time.monotonic() - started < 10
            # Not ended: its container is gone and entities got it back, to queue it again
            assert w.tap.final(job.run_id) is None
            assert await containers_of(docker_client, job.run_id) == []
            assert _released(w) == [
                (job.run_id, 3, w.settings.runner_id, f"runner {w.settings.runner_id} shut down"),
            ]
            # The job was acked at its claim: it is entities that queues the next attempt
            assert await jobs_waiting(w.channel) == 0

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
            assert w.tap.final(job.run_id) is None
            assert [r[0] for r in _released(w)] == [job.run_id]


def _released(w) -> list[tuple[str, int, str, str]]:
    assert w.entities is not None
    return [(r.run_id, r.attempt, r.runner_id, r.reason) for r in w.entities.releases]


def test_a_job_waiting_for_its_claim_at_shutdown_goes_back_to_the_queue(
    rabbit_url, test_image, caplog
):
    caplog.set_level(logging.INFO, logger="runner_svc")

    async def scenario() -> None:
        # Given a job whose claim waits for an entities service that is down
        async with world(rabbit_url, entities_addr=f"127.0.0.1:{free_port()}") as w:
            job = make_job(test_image, ["echo never"])
            await w.publish(job)
            await w.tap.wait_for(
                lambda: any("cannot claim" in m for m in caplog.messages),
                "a failed claim",
            )
            # When the runner is told to stop
            w.signal()
            await w.stopped()
            # Then the job is back in the queue, for any runner
            assert await jobs_waiting(w.channel) == 1
            assert w.tap.of(job.run_id) == []

    asyncio.run(scenario())


def test_a_shutdown_while_the_broker_is_gone_still_ends_within_seconds(
    rabbitmq_available, test_image, monkeypatch
):
    monkeypatch.setattr(amqp, "CANCEL_TIMEOUT_S", 0.5)

    async def scenario() -> None:
        with fresh_vhost() as url:
            async with entities_server() as (addr, _):
                settings = RunnerSettings.from_env(runner_env(url, addr))
                async with running_runner(settings) as (service, task):
                    # Given a runner whose broker connection is gone for good
                    vhost = url.rsplit("/", 1)[1]
                    gone = subprocess.run(
                        ["rabbitmqctl", "-q", "delete_vhost", vhost],
                        capture_output=True,
                        timeout=60,
                    )
                    assert gone.returncode == 0, gone.stderr
                    # When it is told to stop
                    started = time.monotonic()
                    service.request_shutdown("test signal")
                    # Then it stops cleanly, without waiting for the broker to come back
                    await asyncio.wait_for(asyncio.shield(task), 20)
                    assert time.monotonic() - started < 5

    asyncio.run(scenario())
