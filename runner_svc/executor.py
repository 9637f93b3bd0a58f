"""What a runner type must provide to execute runs, and the registry of runner types.

A run asks its executor for a workspace (for Docker: one container), executes each step
in it in order and removes it at the end. Adding a runner type means writing one class
with this interface and one line in EXECUTORS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from bob_common.config import RunnerSettings
from runner_svc.docker_executor import DockerExecutor
from runner_svc.errors import UnknownRunnerType
from runner_svc.logsink import LogSink

# Writes a "[bob] ..." line to the run's log.
Say = Callable[[str], Awaitable[None]]


class Workspace(Protocol):
    """One run's isolated place where its steps execute in order, sharing a file system."""

    async def exec(self, cmd: str, env: Mapping[str, str], output: LogSink) -> int:
        """Runs `/bin/sh -c cmd` and returns its exit code; its stdout and stderr go to
        `output`, which is closed exactly once whatever happens. Raises StepFailed when
        the command could not be run at all."""
        ...

    async def kill(self) -> None:
        """Ends whatever runs now, at once; exec() then returns. Never raises."""
        ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def remove(self) -> None:
        """Frees everything the workspace holds. Never raises."""
        ...


class Executor(Protocol):
    async def start(self) -> None:
        """Checks the backend is reachable and removes workspaces this runner left behind."""
        ...

    async def prepare(
        self, run_id: str, image: str, env: Mapping[str, str], say: Say
    ) -> Workspace:
        """A started workspace for one run; raises PrepareFailed with the reason."""
        ...

    async def close(self) -> None: ...


EXECUTORS: dict[str, Callable[[RunnerSettings], Executor]] = {
    "docker": DockerExecutor,
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
