"""The shell runner type: steps as local processes in a per-run temporary directory, and
each runner type taking only its own jobs."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from bob_common.config import RunnerSettings
from bob_pb import messages_pb2, pipeline_pb2
from devcluster.test_image import IMAGE
from runner_svc.executors.shell import executor as shell_executor
from tests.runner.harness import make_job, runner_env, running_runner, world
from tests.waiting import await_until

OUT = messages_pb2.STDOUT


def _own_directories(runner_id: str) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"bob-{runner_id}-*"))


def test_steps_share_a_private_directory_and_see_only_the_runs_environment(rabbit_url):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type="shell") as w:
            job = make_job(
                IMAGE,
                [
                    "echo hello > greeting.txt; pwd",
                    pipeline_pb2.Step(
                        cmd='cat greeting.txt; echo "$WHO from $WHERE"', vars={"WHO": "step two"}
                    ),
                    'echo "queue=${BOB_QUEUE_URL:-unset} home=$HOME"',
                ],
                vars={"WHO": "pipeline", "WHERE": "bob"},
                runner_type="shell",
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)

            assert final.status == messages_pb2.PASSED, w.tap.describe()
            workdir, hello, who, env = w.tap.texts(job.run_id, OUT)
            assert Path(workdir).parent == Path(tempfile.gettempdir())
            assert Path(workdir).name.startswith(f"bob-{w.settings.runner_id}-{job.run_id}-")
            assert (hello, who) == ("hello", "step two from bob")
            # The runner's own variables (the queue's password) are not passed on
            assert env == f"queue=unset home={workdir}"
            assert (
                "[bob] shell runner: steps run as local processes, not isolated; the image "
                f"{IMAGE} is ignored" in w.tap.texts(job.run_id)
            )

            # And the directory is gone with the run (removed just after its end is sent)
            async def removed() -> bool:
                return not Path(workdir).exists()

            await await_until(removed, timeout=10, what="the directory to go")

    asyncio.run(scenario())


def test_processes_a_step_leaves_behind_end_with_the_run(rabbit_url, tmp_path):
    marker = tmp_path / "still-alive"

    async def scenario() -> None:
        async with world(rabbit_url, runner_type="shell") as w:
            # Given a step that returns, leaving a process in the background that even
            # holds on to the step's output
            job = make_job(
                IMAGE,
                [f"(sleep 300; touch {marker}) & echo pid $!"],
                runner_type="shell",
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.status == messages_pb2.PASSED
            # Then that process is gone once the run has ended
            [pid] = [int(t.split()[1]) for t in w.tap.texts(job.run_id) if t.startswith("pid ")]

            async def gone() -> bool:
                try:
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except FileNotFoundError:
                    return True
                return state == "Z"

            await await_until(gone, timeout=10, what="the background process to end")

            async def none_left() -> bool:
                return _own_directories(w.settings.runner_id) == []

            await await_until(none_left, timeout=10, what="the directory to go")

    asyncio.run(scenario())


def test_a_failing_step_fails_the_shell_run_and_later_steps_never_run(rabbit_url):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type="shell") as w:
            job = make_job(IMAGE, ["echo one", "exit 4", "echo never"], runner_type="shell")
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert (final.status, final.reason) == (messages_pb2.FAILED, "step 2 exited with 4")
            assert w.tap.texts(job.run_id, OUT) == ["one"]

    asyncio.run(scenario())


def test_directories_left_by_a_crashed_shell_runner_are_removed_at_start(rabbit_url):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type="shell") as w:
            runner_id = w.settings.runner_id
        # Given a directory of this runner id, left from before a crash
        left = Path(tempfile.mkdtemp(prefix=f"bob-{runner_id}-r-orphan-"))
        (left / "file").write_text("x")
        os.chmod(left, 0o500)  # even one a step made read-only
        # When the runner starts with that id
        async with world(rabbit_url, runner_type="shell", runner_id=runner_id):
            # Then it is gone
            assert not left.exists()

    asyncio.run(scenario())


def test_each_runner_takes_only_the_jobs_of_its_own_type(rabbit_url, test_image):
    async def scenario() -> None:
        # Given a docker runner and a shell runner on the same broker
        async with world(rabbit_url) as w:
            env = runner_env(rabbit_url, w.settings.common.entities_addr, runner_type="shell")
            shell_settings = RunnerSettings.from_env(env)
            async with running_runner(shell_settings):
                # When a job of each type is published
                jobs = {
                    kind: make_job(test_image, ["echo $0"], runner_type=kind)
                    for kind in ("docker", "shell")
                }
                for job in jobs.values():
                    await w.publish(job)
                # Then each ran on the runner of its type
                for job in jobs.values():
                    assert (await w.tap.terminal(job.run_id)).status == messages_pb2.PASSED
                ran_on = {
                    kind: {e.runner_id for e in w.tap.of(job.run_id)} for kind, job in jobs.items()
                }
                assert ran_on == {
                    "docker": {w.settings.runner_id},
                    "shell": {shell_settings.runner_id},
                }

    asyncio.run(scenario())


class _ExitsAsItWrites:
    """A step's process that writes its last line in the very moment it is seen to exit,
    keeping its pipes open the way a child left in the background does."""

    def __init__(self) -> None:
        out_r, self._out_w = os.pipe()
        err_r, self._err_w = os.pipe()
        self.stdout, self.stderr = os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb")
        self._exited = False

    def poll(self) -> int | None:
        if not self._exited:
            os.write(self._out_w, b"last words\n")
            self._exited = True
        return 0

    def close(self) -> None:
        os.close(self._out_w)
        os.close(self._err_w)


class _Recorded:
    def __init__(self) -> None:
        self.chunks: list[tuple[int, bytes]] = []

    def write(self, stream: int, data: bytes) -> None:
        self.chunks.append((stream, data))


def test_output_written_as_the_step_exits_is_kept():
    process, output = _ExitsAsItWrites(), _Recorded()
    try:
        shell_executor._pump(process, output)  # type: ignore[arg-type]
    finally:
        process.close()
    assert output.chunks == [(OUT, b"last words\n")]
