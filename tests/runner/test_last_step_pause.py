"""The last step of a Docker run, handed to its container's entry from the event loop,
against a pause that came before it: it waits the pause out without holding the loop up
and runs once resumed, and a stop while it waits fails it at once instead of attaching."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bob_common.config import RunnerSettings
from devcluster.test_image import IMAGE
from runner_svc.errors import StepFailed
from runner_svc.executors.docker.executor import DockerExecutor
from runner_svc.reporting.logsink import LogSink
from tests.runner.harness import runner_env


async def _say(_text: str) -> None:
    pass


def _in_a_paused_workspace(docker_client, scenario) -> None:
    """scenario(workspace, sink, lines, ticks) with a prepared container frozen by the
    workspace's pause, a reader of the sink, and a count of the loop's ticks."""
    settings = RunnerSettings.from_env(
        runner_env(
            "amqp://unused/",
            "127.0.0.1:1",
            runner_id=f"ws-{uuid.uuid4().hex[:8]}",
            runner_type="docker",
        )
    )

    async def main() -> None:
        executor = DockerExecutor(settings)
        await executor.start()
        loop = asyncio.get_running_loop()
        ticks = [0]

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.01)
                ticks[0] += 1

        ticking = asyncio.create_task(tick())
        try:
            workspace = await executor.prepare(
                f"r-lastpause-{uuid.uuid4().hex[:6]}", IMAGE, {}, _say, attempt=1
            )
            sink = LogSink(loop, batch_lines=100, flush_s=0.05)
            lines: list[str] = []

            async def read() -> None:
                async for batch in sink.batches():
                    lines.extend(text for _, text in batch)

            reader = asyncio.create_task(read())
            try:
                await workspace.pause()
                await scenario(workspace, sink, lines, ticks)
                await asyncio.wait_for(reader, 10)
            finally:
                reader.cancel()
                await workspace.kill()
                await workspace.remove()
        finally:
            ticking.cancel()
            await executor.close()

    asyncio.run(main())


def test_a_last_step_after_a_pause_waits_for_the_resume_and_then_runs(docker_client):
    async def scenario(workspace, sink, lines, ticks) -> None:
        step = asyncio.create_task(workspace.exec("echo ran; exit 4", {}, sink, last=True))
        before = ticks[0]
        await asyncio.sleep(1.5)
        # Not attached (no step handed over) while frozen, and the loop ran on meanwhile
        assert not step.done() and lines == []
        assert ticks[0] > before + 10
        started = time.monotonic()
        await workspace.resume()
        assert await asyncio.wait_for(step, 30) == 4
        print(f"attach: the last step ended {time.monotonic() - started:.2f} s after the resume")

    _in_a_paused_workspace(docker_client, scenario)


@pytest.mark.parametrize("halt", ["terminate", "kill"])
def test_a_stop_while_the_last_step_waits_out_a_pause_fails_it_unattached(docker_client, halt):
    async def scenario(workspace, sink, lines, ticks) -> None:
        step = asyncio.create_task(workspace.exec("echo ran", {}, sink, last=True))
        await asyncio.sleep(0.5)
        assert not step.done()
        await getattr(workspace, halt)()
        with pytest.raises(StepFailed, match="the run is being stopped"):
            await asyncio.wait_for(step, 30)
        assert lines == []

    _in_a_paused_workspace(docker_client, scenario)
