"""Start-up: the orphans of an earlier life are removed, and an unreachable broker is
retried until it is there."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid

import pytest

from bob_common.config import RunnerSettings
from runner_svc.executors.docker.entry import ENTRY
from runner_svc.executors.docker.executor import LABEL_RUN, LABEL_RUNNER
from tests.runner.harness import containers_of, runner_env, started_runner, world
from tests.support.containers import run_containers
from tests.waiting import await_until


def test_containers_left_behind_by_this_runner_are_removed_at_start(
    rabbit_url, test_image, docker_client
):
    # Given a container of this runner id, left from before a crash
    runner_id = f"test-runner-{uuid.uuid4().hex[:8]}"
    orphan = docker_client.containers.run(
        test_image,
        entrypoint=ENTRY,
        stdin_open=True,
        labels={LABEL_RUN: f"r-orphan-{runner_id}", LABEL_RUNNER: runner_id},
        network_mode="none",
        detach=True,
    )

    async def scenario() -> None:
        # When the runner starts with that id
        async with world(rabbit_url, runner_id=runner_id):
            # Then the orphan is gone
            assert await containers_of(docker_client, f"r-orphan-{runner_id}") == []

    try:
        asyncio.run(scenario())
    finally:
        if containers_of_now(docker_client, f"r-orphan-{runner_id}"):
            orphan.remove(force=True)


def containers_of_now(docker_client, run_id: str) -> list:
    return run_containers(docker_client, run_id)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def late_vhost(rabbitmq_available):
    """A vhost that does not exist until the test creates it."""
    vhost = f"bob-test-late-{uuid.uuid4().hex[:8]}"
    yield vhost
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def test_an_unreachable_broker_is_retried_until_it_is_there(late_vhost, test_image, caplog):
    caplog.set_level(logging.INFO, logger="runner_svc")
    url = f"amqp://guest:guest@127.0.0.1:5672/{late_vhost}"

    async def retried() -> bool:
        return any("cannot reach RabbitMQ" in m for m in caplog.messages)

    async def scenario() -> None:
        # Given a broker that does not let the runner in yet
        settings = RunnerSettings.from_env(runner_env(url, "127.0.0.1:1"))
        async with started_runner(settings) as (service, _):
            await await_until(retried, what="a failed connection attempt")
            # When it does
            await asyncio.to_thread(_rabbitmqctl, "add_vhost", late_vhost)
            await asyncio.to_thread(
                _rabbitmqctl, "set_permissions", "-p", late_vhost, "guest", ".*", ".*", ".*"
            )
            # Then the runner gets in and is ready for jobs
            await asyncio.wait_for(service.ready.wait(), 60)

    asyncio.run(scenario())


def test_a_shutdown_while_the_broker_is_unreachable_returns_at_once(
    late_vhost, docker_client, caplog
):
    caplog.set_level(logging.INFO, logger="runner_svc")
    url = f"amqp://guest:guest@127.0.0.1:5672/{late_vhost}"

    async def retried() -> bool:
        return any("cannot reach RabbitMQ" in m for m in caplog.messages)

    async def scenario() -> None:
        settings = RunnerSettings.from_env(runner_env(url, "127.0.0.1:1"))
        async with started_runner(settings) as (service, task):
            await await_until(retried, what="a failed connection attempt")
            service.request_shutdown("test over")
            await asyncio.wait_for(task, 5)
            assert not service.ready.is_set()

    asyncio.run(scenario())
