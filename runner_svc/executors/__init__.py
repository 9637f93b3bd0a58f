"""What a runner type must provide to execute runs, and the registry of runner types.

A run asks its executor for a workspace (for Docker: one container; for the shell: a
temporary directory), places resources in it, executes each step in it in order, takes
artifacts out of it and removes it at the end. Adding a runner type means writing one
class with this interface, a factory that imports it, and one line in EXECUTORS.

Each executor lives in a subpackage of its own (docker/, shell/) and is imported only
when it is built: importing this registry does not import the Docker SDK.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol

from bob_common.config import RunnerSettings
from runner_svc.errors import UnknownRunnerType
from runner_svc.reporting.logsink import LogSink
from runner_svc.spec import NO_LIMITS, Limits

# Writes a "[bob] ..." line to the run's log.
Say = Callable[[str], Awaitable[None]]
# Makes a plain tar stream; called, and iterated, on a worker thread.
Archive = Callable[[], Iterator[bytes]]
# Takes a tar stream (e.g. uploads it); called on a worker thread.
Consume = Callable[[Iterator[bytes]], None]
# Whether the workspace of (run id, attempt or None when unknown) is nobody's any more.
Orphaned = Callable[[str, int | None], Awaitable[bool]]


class Workspace(Protocol):
    """One run's isolated place where its steps execute in order, sharing a file system."""

    async def exec(
        self,
        cmd: str,
        env: Mapping[str, str],
        output: LogSink,
        *,
        last: bool = False,
        cwd: str = "",
    ) -> int:
        """Runs `/bin/sh -c cmd` in `cwd` (relative to the working directory; "" is the
        working directory itself) and returns its exit code; its stdout and stderr go to
        `output`, which is closed exactly once whatever happens. Raises StepFailed when
        the command could not be run at all. `last`: no step follows, so the workspace
        may run this one in a way that leaves it unable to run another (Docker: as the
        container's own process)."""
        ...

    async def out_of_memory(self, exit_code: int) -> int:
        """The memory limit in bytes a process of the workspace was killed for going
        over, asked after a step ended with `exit_code`; 0 when none was. Never raises: 0
        when it cannot tell, or the workspace has no memory limit."""
        ...

    async def gone(self, exit_code: int | None, *, last: bool) -> str:
        """Why the workspace broke down beneath its step, asked after the step exited
        with `exit_code` (None: it could not run) when the run did not halt it itself: e.g.
        "the build container exited unexpectedly (exit 137)", or its engine is
        unreachable. "" when it is fine or cannot tell. Never raises."""
        ...

    async def terminate(self) -> None:
        """Sends SIGTERM to the processes of the step running now (thawing them first if
        they are paused), so they can end by themselves. Never raises."""
        ...

    async def kill(self) -> None:
        """Ends whatever runs now, at once (SIGKILL); exec() then returns. Never raises."""
        ...

    async def pause(self) -> None:
        """Freezes the step's processes; RunnerError when it cannot."""
        ...

    async def resume(self) -> None: ...

    async def put_archive(self, archive: Archive) -> None:
        """Unpacks the tar that archive() streams into the working directory. The stream
        has been checked (tarsafe.rewrite) and its errors (TransferFailed) pass through;
        raises TransferFailed when the workspace cannot take it."""
        ...

    async def get_archive(self, path: str, consume: Consume) -> None:
        """Streams a tar of `path`, relative to the working directory, to consume(). Raises
        TransferFailed when the path does not exist or cannot be read; consume()'s errors
        pass through."""
        ...

    async def remove(self) -> None:
        """Frees everything the workspace holds. Never raises."""
        ...


class Executor(Protocol):
    async def start(self) -> None:
        """Checks the backend is reachable and removes workspaces this runner left behind."""
        ...

    async def prepare(
        self,
        run_id: str,
        image: str,
        env: Mapping[str, str],
        say: Say,
        *,
        attempt: int,
        limits: Limits = NO_LIMITS,
        user: str = "",
    ) -> Workspace:
        """A started workspace for one run, held to `limits` where the executor can (a
        container can, within the runner's defaults and ceilings; a local process is not;
        it says so), its steps run as `user` where it can ("": the image's); raises
        PrepareFailed with the reason."""
        ...

    async def sweep(self, orphaned: Orphaned) -> int:
        """Removes the workspaces on this host, of any runner working for the same entities,
        that orphaned() says are nobody's any more, and returns how many; what orphaned()
        raises passes through. An executor that cannot tell (shell) removes nothing."""
        ...

    async def engine_problem(self) -> str:
        """Why the engine behind the workspaces cannot be used now (e.g. Docker does not
        answer), "" when it can. Asked every BOB_RUNNER_ENGINE_CHECK_S; never raises."""
        ...

    async def close(self) -> None: ...


def _docker(settings: RunnerSettings) -> Executor:
    from runner_svc.executors.docker.executor import DockerExecutor

    return DockerExecutor(settings)


def _shell(settings: RunnerSettings) -> Executor:
    from runner_svc.executors.shell.executor import ShellExecutor

    return ShellExecutor(settings)


# The factories import their executor when called, so a runner loads only its own.
EXECUTORS: dict[str, Callable[[RunnerSettings], Executor]] = {
    "docker": _docker,
    "shell": _shell,
}


def create_executor(settings: RunnerSettings) -> Executor:
    try:
        factory = EXECUTORS[settings.runner_type]
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise UnknownRunnerType(
            f"no executor for runner type {settings.runner_type!r} (known: {known})"
        ) from None
    return factory(settings)
