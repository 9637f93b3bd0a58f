"""One run: get a workspace, execute the steps in order, report everything, clean up.

Knows the executor interface and a reporter, nothing of AMQP or gRPC. Control commands
(stop, pause, resume) arrive as method calls while execute() is running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol

from bob_pb import messages_pb2
from runner_svc.errors import PrepareFailed, RunnerError, StepFailed
from runner_svc.executor import Executor, Workspace
from runner_svc.logsink import Line, LogSink
from runner_svc.runlog import run_logger

log = logging.getLogger(__name__)

STOPPED_REASON = "stopped by request"
_TERMINAL = {messages_pb2.PASSED, messages_pb2.FAILED, messages_pb2.STOPPED}


@dataclass(frozen=True)
class StepSpec:
    cmd: str
    # Overrides the run's vars for this step.
    vars: Mapping[str, str] = field(default_factory=dict)
    needs_resource: str = ""
    produces_artifact: str = ""


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    attempt: int
    image: str
    steps: tuple[StepSpec, ...]
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    status: int  # a terminal messages_pb2.RunStatus
    reason: str = ""


class Reporter(Protocol):
    async def status(self, status: int, reason: str = "") -> None: ...
    async def step_finished(self, index: int, exit_code: int, duration_ms: int) -> None: ...
    async def say(self, text: str) -> None: ...
    async def logs(self, lines: Sequence[Line]) -> None: ...


class Run:
    def __init__(
        self,
        spec: RunSpec,
        executor: Executor,
        reporter: Reporter,
        *,
        batch_lines: int,
        flush_s: float,
    ) -> None:
        self.spec = spec
        self._executor = executor
        self._report = reporter
        self._batch_lines = batch_lines
        self._flush_s = flush_s
        self._workspace: Workspace | None = None
        self._state = messages_pb2.INITIALIZING
        self._stop_requested = False
        # Cleared while paused: the next step waits for it.
        self._resumed = asyncio.Event()
        self._resumed.set()
        # Serialises status changes (running, paused, terminal) with the container's state.
        self._control = asyncio.Lock()
        self._log = run_logger(log, spec.run_id)

    async def execute(self) -> Outcome:
        """Runs to the end, publishes the terminal status last and returns it. When cancelled
        (the runner is shutting down) the workspace is removed and nothing final is
        published: the job goes back to the queue."""
        try:
            outcome = await self._execute()
        finally:
            if self._workspace is not None:
                # Shielded: a second cancellation must not leave the container behind.
                await asyncio.shield(self._workspace.remove())
        # Removed before the terminal status, so whoever sees it sees the container gone.
        await self._finish(outcome)
        return outcome

    async def _execute(self) -> Outcome:
        spec = self.spec
        if problem := self._unsupported():
            return Outcome(messages_pb2.FAILED, problem)
        if self._stop_requested:
            return Outcome(messages_pb2.STOPPED, STOPPED_REASON)
        try:
            self._workspace = await self._executor.prepare(
                spec.run_id, spec.image, spec.vars, self._report.say
            )
        except PrepareFailed as exc:
            return Outcome(messages_pb2.FAILED, str(exc))
        if self._stop_requested:  # asked while the image was pulled or the container made
            return Outcome(messages_pb2.STOPPED, STOPPED_REASON)
        async with self._control:
            self._state = messages_pb2.RUNNING
            await self._report.status(messages_pb2.RUNNING)
        for index, step in enumerate(spec.steps):
            await self._resumed.wait()
            if self._stop_requested:
                break
            try:
                exit_code = await self._step(self._workspace, index, step)
            except StepFailed as exc:
                if self._stop_requested:
                    break
                return Outcome(messages_pb2.FAILED, f"step {index + 1} could not run: {exc}")
            if self._stop_requested:
                break
            if exit_code != 0:
                return Outcome(messages_pb2.FAILED, f"step {index + 1} exited with {exit_code}")
        if self._stop_requested:
            return Outcome(messages_pb2.STOPPED, STOPPED_REASON)
        return Outcome(messages_pb2.PASSED)

    def _unsupported(self) -> str:
        if not self.spec.image:
            return "the pipeline has no image"
        for number, step in enumerate(self.spec.steps, start=1):
            if step.needs_resource:
                return (f"step {number} needs resource {step.needs_resource!r}: "
                        "resources are not supported by this runner yet")
            if step.produces_artifact:
                return (f"step {number} produces artifact {step.produces_artifact!r}: "
                        "artifacts are not supported by this runner yet")
        return ""

    async def _step(self, workspace: Workspace, index: int, step: StepSpec) -> int:
        await self._report.say(f"step {index + 1}/{len(self.spec.steps)}: {step.cmd}")
        sink = LogSink(
            asyncio.get_running_loop(), batch_lines=self._batch_lines, flush_s=self._flush_s
        )
        started = time.monotonic()
        execution = asyncio.ensure_future(workspace.exec(step.cmd, step.vars, sink))
        execution.add_done_callback(lambda _: sink.ensure_ended())
        try:
            async with aclosing(sink.batches()) as batches:
                async for batch in batches:
                    await self._report.logs(batch)
            exit_code = await execution
        finally:
            if not execution.done():
                sink.abort()
                execution.cancel()
        duration_ms = int((time.monotonic() - started) * 1000)
        await self._report.step_finished(index, exit_code, duration_ms)
        self._log.info("step %d/%d exited with %d after %d ms",
                       index + 1, len(self.spec.steps), exit_code, duration_ms)
        return exit_code

    async def _finish(self, outcome: Outcome) -> None:
        async with self._control:
            self._state = outcome.status
            name = messages_pb2.RunStatus.Name(outcome.status).lower()
            summary = f"run {name}: {outcome.reason}" if outcome.reason else f"run {name}"
            self._log.info("%s", summary)
            await self._report.say(summary)
            await self._report.status(outcome.status, outcome.reason)

    async def fail(self, reason: str) -> None:
        """Ends a run that broke down unexpectedly as FAILED, unless it has ended."""
        if self._state not in _TERMINAL:
            await self._finish(Outcome(messages_pb2.FAILED, reason))

    # --- control commands, called while execute() runs ------------------------------

    async def stop(self) -> None:
        """Kills what runs now; no further step starts and the run ends STOPPED."""
        if self._stop_requested or self._state in _TERMINAL:
            return
        self._log.info("stop requested")
        self._stop_requested = True
        self._resumed.set()
        if self._workspace is not None:
            await self._workspace.kill()

    async def pause(self) -> None:
        async with self._control:
            if self._state != messages_pb2.RUNNING or self._stop_requested:
                self._log.info("not pausing: run is %s", self._state_name())
                return
            assert self._workspace is not None
            try:
                await self._workspace.pause()
            except RunnerError as exc:
                self._log.warning("%s", exc)
                return
            self._state = messages_pb2.PAUSED
            self._resumed.clear()
            await self._report.status(messages_pb2.PAUSED)

    async def resume(self) -> None:
        async with self._control:
            if self._state != messages_pb2.PAUSED:
                self._log.info("not resuming: run is %s", self._state_name())
                return
            assert self._workspace is not None
            try:
                await self._workspace.resume()
            except RunnerError as exc:
                self._log.warning("%s", exc)
                return
            self._state = messages_pb2.RUNNING
            self._resumed.set()
            await self._report.status(messages_pb2.RUNNING)

    def _state_name(self) -> str:
        return messages_pb2.RunStatus.Name(self._state)
