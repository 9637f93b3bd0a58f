"""Nothing is left behind: whatever way a run ends, its container goes, and no image is
made; the shell runner's directories go too."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bob_pb import messages_pb2, pipeline_pb2
from runner_svc.executors.docker.executor import LABEL_RUNNER, LABEL_SPARE
from tests.runner.harness import make_job, world
from tests.waiting import await_until

Step = pipeline_pb2.Step


def _counts(docker_client, runner_id: str) -> tuple[int, int]:
    """Containers that are not another runner's (others may be at work on this engine)
    nor a spare kept for the next run, and images. Sparse: listing must not inspect
    containers it does not need."""
    containers = docker_client.containers.list(all=True, sparse=True)
    ours = [
        c
        for c in containers
        if (c.attrs.get("Labels") or {}).get(LABEL_RUNNER) in (None, runner_id)
        and LABEL_SPARE not in (c.attrs.get("Labels") or {})
    ]
    return len(ours), len(docker_client.images.list(all=True))


def _of_runner(docker_client, runner_id: str) -> list:
    return docker_client.containers.list(
        all=True, sparse=True, filters={"label": f"{LABEL_RUNNER}={runner_id}"}
    )


def test_a_batch_of_passed_failed_stopped_and_timed_out_runs_leaves_no_container_or_image(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=4) as w:
            before = await asyncio.to_thread(_counts, docker_client, w.settings.runner_id)
            jobs = {
                "passed": make_job(test_image, ["echo fine > f", "cat f"]),
                "failed": make_job(test_image, ["exit 2"]),
                "stopped": make_job(test_image, ["echo long; sleep 300"]),
                "timed out": make_job(test_image, [Step(cmd="sleep 300", timeout=1)]),
                "not pulled": make_job("bob-test/no-such-image:never", ["true"]),
            }
            for job in jobs.values():
                await w.publish(job)
            stopped = jobs["stopped"].run_id
            await w.tap.wait_for(lambda: "long" in w.tap.texts(stopped), "the long step")
            await w.control(stopped, messages_pb2.STOP)
            finals = {
                kind: (await w.tap.terminal(job.run_id, timeout=60)).status
                for kind, job in jobs.items()
            }

            assert finals == {
                "passed": messages_pb2.PASSED,
                "failed": messages_pb2.FAILED,
                "stopped": messages_pb2.STOPPED,
                "timed out": messages_pb2.FAILED,
                "not pulled": messages_pb2.FAILED,
            }

            # A run reports its end, then removes its container.
            async def counts_back() -> bool:
                now = await asyncio.to_thread(_counts, docker_client, w.settings.runner_id)
                return now == before

            await await_until(counts_back, timeout=30, what="the containers to be removed")
            runner_id = w.settings.runner_id
        # And once the runner has stopped, not even its spare containers are left
        assert await asyncio.to_thread(_of_runner, docker_client, runner_id) == []

    asyncio.run(scenario())


def test_shell_runs_leave_no_directory_whatever_their_end(rabbit_url):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type="shell") as w:
            mine = f"bob-{w.settings.runner_id}-*"
            jobs = [
                make_job("ignored", cmds, runner_type="shell")
                for cmds in (["echo ok > f"], ["exit 1"], ["echo long; sleep 300"])
            ]
            for job in jobs:
                await w.publish(job)
            await w.tap.wait_for(lambda: "long" in w.tap.texts(jobs[2].run_id), "the long step")
            await w.control(jobs[2].run_id, messages_pb2.STOP)
            for job in jobs:
                await w.tap.terminal(job.run_id)

            async def none_left() -> bool:  # removed just after the end is sent
                return list(Path(tempfile.gettempdir()).glob(mine)) == []

            await await_until(none_left, timeout=10, what="the run directories to go")

    asyncio.run(scenario())
