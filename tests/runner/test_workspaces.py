"""Workspaces driven directly, on both executors: a pause that lands while a step is
being started must neither fail the step nor (Docker) wedge the engine."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from bob_common.config import RunnerSettings
from devcluster.test_image import IMAGE
from runner_svc.executor import create_executor
from runner_svc.logsink import LogSink
from tests.runner.harness import runner_env

TRIALS = 20


def _thaw(container_id: str) -> None:
    """If a regression froze an exec half-way, thaw the container behind the engine's
    back, so that this test's failure does not wedge Docker for every later test."""
    for path in (Path(f"/sys/fs/cgroup/freezer/docker/{container_id}/freezer.state"),
                 Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cgroup.freeze")):
        with contextlib.suppress(OSError):
            path.write_text("THAWED" if path.name == "freezer.state" else "0")


def test_a_pause_racing_with_the_start_of_a_step_never_fails_or_wedges_it(runner_type):
    settings = RunnerSettings.from_env(runner_env(
        "amqp://unused/", "127.0.0.1:1", runner_id=f"ws-{uuid.uuid4().hex[:8]}",
        runner_type=runner_type,
    ))

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
                    step = asyncio.create_task(workspace.exec("echo hi", {}, sink))
                    paused = loop.create_future()
                    loop.call_later(0.003 * trial, lambda f=paused: f.set_result(None))
                    await paused
                    await workspace.pause()
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
