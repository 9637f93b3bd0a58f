"""Workspaces driven directly: on both executors, a pause that lands while a step is
being started must neither fail the step nor (Docker) wedge the engine; on Docker, a
step may stay silent for longer than the engine client's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import docker
import pytest

from bob_common.config import RunnerSettings
from devcluster.test_image import IMAGE
from runner_svc.errors import RunnerError
from runner_svc.executors import create_executor
from runner_svc.executors.docker.executor import DockerExecutor
from runner_svc.reporting.logsink import LogSink
from tests.runner.harness import runner_env

TRIALS = 20


def _thaw(container_id: str) -> None:
    """If a regression froze an exec half-way, thaw the container behind the engine's
    back, so that this test's failure does not wedge Docker for every later test."""
    for path in (
        Path(f"/sys/fs/cgroup/freezer/docker/{container_id}/freezer.state"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cgroup.freeze"),
    ):
        with contextlib.suppress(OSError):
            path.write_text("THAWED" if path.name == "freezer.state" else "0")


@pytest.mark.parametrize("last", [False, True], ids=["exec", "entry"])
def test_a_pause_racing_with_the_start_of_a_step_never_fails_or_wedges_it(runner_type, last):
    settings = RunnerSettings.from_env(
        runner_env(
            "amqp://unused/",
            "127.0.0.1:1",
            runner_id=f"ws-{uuid.uuid4().hex[:8]}",
            runner_type=runner_type,
        )
    )

    async def say(_text: str) -> None:
        pass

    async def scenario() -> None:
        executor = create_executor(settings)
        await executor.start()
        loop = asyncio.get_running_loop()
        try:
            for trial in range(TRIALS):
                workspace = await executor.prepare(f"r-race-{trial}", IMAGE, {}, say, attempt=1)
                sink = LogSink(loop, batch_lines=100, flush_s=0.05)
                lines: list[str] = []

                async def read(sink: LogSink = sink, lines: list[str] = lines) -> None:
                    async for batch in sink.batches():
                        lines.extend(text for _, text in batch)

                reader = asyncio.create_task(read())
                try:
                    # Given a step being started, and a pause landing at a moment that
                    # moves across the start from trial to trial
                    step = asyncio.create_task(workspace.exec("echo hi", {}, sink, last=last))
                    paused = loop.create_future()
                    loop.call_later(0.003 * trial, lambda f=paused: f.set_result(None))
                    await paused
                    try:
                        await workspace.pause()
                    except RunnerError:
                        # Only a last step ends its container, and with it what a pause
                        # could freeze: the pause is refused, the run goes on unpaused.
                        assert last and runner_type == "docker", trial
                    else:
                        # When it is resumed
                        await asyncio.wait_for(workspace.resume(), 10)
                    # Then the step ran as if nothing happened
                    assert await asyncio.wait_for(step, 10) == 0
                    await asyncio.wait_for(reader, 10)
                    assert lines == ["hi"], trial
                finally:
                    reader.cancel()
                    if runner_type == "docker":
                        _thaw(workspace._container.id)
                    await workspace.remove()
        finally:
            await executor.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("last", [False, True], ids=["exec", "entry"])
def test_a_step_silent_for_longer_than_the_engine_clients_timeout_still_ends(last):
    """The engine client's timeout (60 s by default, 2 s here) is for calls, not for how
    long a step may print nothing."""
    settings = RunnerSettings.from_env(
        runner_env(
            "amqp://unused/",
            "127.0.0.1:1",
            runner_id=f"ws-{uuid.uuid4().hex[:8]}",
            runner_type="docker",
        )
    )

    async def say(_text: str) -> None:
        pass

    async def scenario() -> None:
        executor = DockerExecutor(settings, client=docker.from_env(timeout=2))
        await executor.start()
        loop = asyncio.get_running_loop()
        try:
            workspace = await executor.prepare("r-silent", IMAGE, {}, say, attempt=1)
            sink = LogSink(loop, batch_lines=100, flush_s=0.05)
            lines: list[str] = []

            async def read() -> None:
                async for batch in sink.batches():
                    lines.extend(text for _, text in batch)

            reader = asyncio.create_task(read())
            try:
                code = await workspace.exec("sleep 4; echo done; exit 3", {}, sink, last=last)
                await asyncio.wait_for(reader, 10)
            finally:
                reader.cancel()
                await workspace.remove()
            assert (code, lines) == (3, ["done"])
        finally:
            await executor.close()

    asyncio.run(scenario())
