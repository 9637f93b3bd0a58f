"""Stop, pause and resume over the control fanout, against real containers."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from bob_pb import messages_pb2
from devcluster.test_image import IMAGE
from runner_svc.jobs.control import ControlListener
from tests.runner.harness import TEST_TUNING, containers_of, make_job, no_container_left, world

# Where the step is: a Docker run's last step is its container's own process, the others
# are execs (docker_entry).
POSITIONS = ["not-last", "last"]


def test_stop_kills_the_running_container_and_marks_the_run_stopped(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            # Given a run busy in a long step
            job = make_job(test_image, ["echo started", "sleep 300", "echo never"])
            await w.publish(job)
            await w.tap.wait_for(
                lambda: "[bob] step 2/3: sleep 300" in w.tap.texts(job.run_id),
                "the sleep step to start",
            )
            # When a stop is broadcast
            asked = time.monotonic()
            await w.control(job.run_id, messages_pb2.STOP)
            final = await w.tap.terminal(job.run_id, timeout=15)

            # Then the run ends STOPPED promptly, nothing more ran, the container is gone
            assert time.monotonic() - asked < 5
            assert final.status == messages_pb2.STOPPED
            assert final.reason == "stopped by request"
            assert "never" not in w.tap.texts(job.run_id)
            assert "[bob] step 3/3: echo never" not in w.tap.texts(job.run_id)
            assert [s.index for s in w.tap.steps(job.run_id)] == [0, 1]
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


@pytest.mark.parametrize("position", POSITIONS)
def test_pause_freezes_the_container_and_resume_lets_the_run_finish(
    rabbit_url, test_image, docker_client, position
):
    steps = ["echo waiting; sleep 1; echo woke", "echo after"]
    if position == "last":
        steps.reverse()

    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(test_image, steps)
            await w.publish(job)
            await w.tap.wait_for(lambda: "waiting" in w.tap.texts(job.run_id), "step output")

            await w.control(job.run_id, messages_pb2.PAUSE)
            await w.tap.wait_for(
                lambda: messages_pb2.PAUSED in w.tap.statuses(job.run_id), "PAUSED"
            )
            [container] = await containers_of(docker_client, job.run_id)
            assert container.status == "paused"
            # Frozen: well past the step's own sleep, it still has not finished.
            await asyncio.sleep(1.5)
            assert "woke" not in w.tap.texts(job.run_id)

            await w.control(job.run_id, messages_pb2.RESUME)
            final = await w.tap.terminal(job.run_id)

            assert final.status == messages_pb2.PASSED, w.tap.describe()
            assert w.tap.statuses(job.run_id) == [
                messages_pb2.INITIALIZED,
                messages_pb2.RUNNING,
                messages_pb2.PAUSED,
                messages_pb2.RUNNING,
                messages_pb2.PASSED,
            ]
            expected = ["waiting", "woke", "after"]
            if position == "last":
                expected = ["after", "waiting", "woke"]
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == expected

    asyncio.run(scenario())


def test_stop_ends_a_paused_run(rabbit_url, test_image, docker_client):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(test_image, ["echo waiting; sleep 300", "echo never"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "waiting" in w.tap.texts(job.run_id), "step output")
            await w.control(job.run_id, messages_pb2.PAUSE)
            await w.tap.wait_for(
                lambda: messages_pb2.PAUSED in w.tap.statuses(job.run_id), "PAUSED"
            )

            await w.control(job.run_id, messages_pb2.STOP)
            final = await w.tap.terminal(job.run_id, timeout=15)

            assert final.status == messages_pb2.STOPPED
            assert "never" not in w.tap.texts(job.run_id)
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


def test_a_command_for_a_run_of_another_runner_is_ignored(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(test_image, ["sleep 0.5; echo fine"])
            await w.publish(job)
            await w.tap.wait_for(lambda: w.tap.statuses(job.run_id), "the run to start")
            await w.control("r-someone-else", messages_pb2.STOP)
            final = await w.tap.terminal(job.run_id)
            assert final.status == messages_pb2.PASSED

    asyncio.run(scenario())


@pytest.mark.parametrize("position", POSITIONS)
def test_stop_sends_sigterm_first_so_a_step_can_clean_up(runner_type, rabbit_url, position):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            # Given a step that cleans up on SIGTERM
            job = make_job(
                IMAGE,
                [
                    "trap 'echo cleaning up; exit 3' TERM; echo ready; sleep 300 & wait $!",
                    *(["echo never"] if position == "not-last" else []),
                ],
                runner_type=runner_type,
            )
            await w.publish(job)
            await w.tap.wait_for(lambda: "ready" in w.tap.texts(job.run_id), "the step")
            # When it is stopped
            await w.control(job.run_id, messages_pb2.STOP)
            final = await w.tap.terminal(job.run_id, timeout=15)
            # Then it had its chance, and the run is stopped
            assert final.status == messages_pb2.STOPPED
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == ["ready", "cleaning up"]
            assert [(s.index, s.exit_code) for s in w.tap.steps(job.run_id)] == [(0, 3)]

    asyncio.run(scenario())


def test_a_step_that_ignores_sigterm_is_killed_after_the_grace(runner_type, rabbit_url):
    grace = TEST_TUNING.stop_grace_s

    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            job = make_job(IMAGE, ["trap '' TERM; echo deaf; sleep 300"], runner_type=runner_type)
            await w.publish(job)
            await w.tap.wait_for(lambda: "deaf" in w.tap.texts(job.run_id), "the step")
            asked = time.monotonic()
            await w.control(job.run_id, messages_pb2.STOP)
            final = await w.tap.terminal(job.run_id, timeout=20)
            took = time.monotonic() - asked
            assert final.status == messages_pb2.STOPPED
            assert grace <= took < grace + 5

    asyncio.run(scenario())


def test_a_paused_shell_run_resumes_and_a_paused_one_can_be_stopped(rabbit_url):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type="shell") as w:
            resumed = make_job(
                IMAGE, ["echo waiting; sleep 1; echo woke", "echo after"], runner_type="shell"
            )
            stopped = make_job(
                IMAGE, ["echo waiting; sleep 300", "echo never"], runner_type="shell"
            )
            for job in (resumed, stopped):
                await w.publish(job)
                await w.tap.wait_for(lambda j=job: "waiting" in w.tap.texts(j.run_id), "output")
                await w.control(job.run_id, messages_pb2.PAUSE)
                await w.tap.wait_for(
                    lambda j=job: messages_pb2.PAUSED in w.tap.statuses(j.run_id), "PAUSED"
                )
            # Frozen: every process of the step is stopped
            frozen = _step_processes(w.settings.runner_id, resumed.run_id)
            assert frozen and set(frozen.values()) == {"T"}, frozen

            await w.control(resumed.run_id, messages_pb2.RESUME)
            await w.control(stopped.run_id, messages_pb2.STOP)

            assert (await w.tap.terminal(resumed.run_id)).status == messages_pb2.PASSED
            assert w.tap.texts(resumed.run_id, messages_pb2.STDOUT) == ["waiting", "woke", "after"]
            assert (await w.tap.terminal(stopped.run_id, timeout=15)).status == (
                messages_pb2.STOPPED
            )
            assert "never" not in w.tap.texts(stopped.run_id)

    asyncio.run(scenario())


def _step_processes(runner_id: str, run_id: str) -> dict[int, str]:
    """pid -> state letter of the processes working in a shell run's directory."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd")
            if proc.name.isdigit() and f"bob-{runner_id}-{run_id}-" in cwd:
                found[int(proc.name)] = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
    return found


class _FakeRun:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def stop(self) -> None:
        self.calls.append("stop")

    async def pause(self) -> None:
        self.calls.append("pause")

    async def resume(self) -> None:
        self.calls.append("resume")


def test_dispatch_logs_an_unknown_action_and_ignores_other_runners_runs(caplog):
    run = _FakeRun()
    listener = ControlListener(lambda run_id: run if run_id == "r-1" else None, channel=None)

    async def scenario() -> None:
        await listener.dispatch(messages_pb2.Control(run_id="r-1", action=42))
        await listener.dispatch(messages_pb2.Control(run_id="r-2", action=messages_pb2.STOP))

    with caplog.at_level(logging.INFO, logger="runner_svc.control"):
        asyncio.run(scenario())
    assert "run r-1: ignoring unknown control action 42" in caplog.messages
    assert run.calls == []


@pytest.mark.parametrize("action", [messages_pb2.STOP, messages_pb2.PAUSE, messages_pb2.RESUME])
def test_dispatch_calls_the_owning_runs_command(action):
    run = _FakeRun()
    listener = ControlListener(lambda run_id: run, channel=None)
    asyncio.run(listener.dispatch(messages_pb2.Control(run_id="r-1", action=action)))
    assert run.calls == [messages_pb2.ControlAction.Name(action).lower()]
