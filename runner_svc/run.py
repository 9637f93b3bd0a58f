"""One run: get a workspace, execute the steps in order (placing the resources they need
first, uploading the artifacts they produce after), report everything, clean up.

Knows the executor interface, the plugins and a reporter, nothing of AMQP. Control
commands (stop, pause, resume, abandon) arrive as method calls while execute() is running,
from the control fanout or the lease renewal, and timeouts are timers of the run's own. A
stop and a timeout both *halt* the run: the first one decides the outcome, sets `abort`
(which ends a transfer at its next chunk) and interrupts what runs, and no further step
starts and nothing more is uploaded. An abandon halts it too, but the run is not this
runner's any more: it ends without a word.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from bob_common.backoff import until_done
from bob_common.quantities import format_memory
from bob_common.run_states import TERMINAL, RunStatus, status_name
from runner_svc import spec as specs
from runner_svc.errors import (
    EntitiesRefused,
    EntitiesUnavailable,
    PrepareFailed,
    RunnerError,
    StepFailed,
    TransferFailed,
)
from runner_svc.executors import Executor, Workspace
from runner_svc.plugins.directory import PluginDirectory
from runner_svc.plugins.transfer import PluginHttp, Transfers
from runner_svc.reporting import masking
from runner_svc.reporting.logcaps import LogBudget
from runner_svc.reporting.logsink import LogSink
from runner_svc.reporting.reporter import MaskingReporter, Reporter
from runner_svc.reporting.runlog import run_logger
from runner_svc.spec import RunSpec, StepSpec
from runner_svc.tuning import Tuning

log = logging.getLogger(__name__)

STOPPED_REASON = "stopped by request"
# How a shell reports a step ended by SIGKILL, which is what the out-of-memory killer sends.
KILLED = 128 + 9
# How long the run's secrets are asked for while entities cannot answer, before it fails.
SECRETS_GIVE_UP_S = 60.0

# Fetches the values of a run's secrets, by secret name: (run id, attempt, the claim's
# secret) -> values.
SecretFetch = Callable[[str, int, bytes], Awaitable[Mapping[str, str]]]


@dataclass(frozen=True)
class Outcome:
    status: RunStatus  # a terminal one
    reason: str = ""


class Run:
    def __init__(
        self,
        spec: RunSpec,
        executor: Executor,
        reporter: Reporter,
        *,
        plugins: PluginDirectory,
        http: PluginHttp,
        batch_lines: int,
        flush_s: float,
        tuning: Tuning,
        secrets: SecretFetch | None = None,
        redacted_vars: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self._executor = executor
        # The values to mask in the log: known once the secrets are fetched, before any
        # output. Everything the run reports goes through the mask.
        self._redactor = masking.Redactor()
        self._report = reporter = MaskingReporter(reporter, self._redactor)
        self._secrets = secrets
        self._redacted_vars = tuple(redacted_vars)
        # Given by the claim (held()): what shows entities that the run is this runner's.
        self._claim_secret = b""
        self._batch_lines = batch_lines
        self._flush_s = flush_s
        self._tuning = tuning
        # The step output this attempt may still store, shared by its steps (logcaps.py).
        self._log_budget = LogBudget(tuning.run_log_max_bytes)
        self._workspace: Workspace | None = None
        self._limits = specs.NO_LIMITS
        self._state = RunStatus.INITIALIZING
        # Set by the first stop or timeout: how the run ends.
        self._halt: Outcome | None = None
        # Set once the steps are over and the outcome known, halted or not.
        self._decided = False
        self._abandoned = False
        self._ended = False  # the terminal status is published
        # Counts control commands, so that a lease answer sent before one does not undo it.
        self.commands = 0
        # Set with _halt; read by transfers on worker threads.
        self._abort = threading.Event()
        self._transfers = Transfers(
            spec,
            plugins=plugins,
            http=http,
            abort=self._abort,
            caps=tuning.archive_caps,
            artifact_max_bytes=tuning.artifact_max_bytes,
            say=reporter.say,
        )
        # Cleared while paused: the next step waits for it.
        self._resumed = asyncio.Event()
        self._resumed.set()
        # Serialises status changes (running, paused, terminal) with the workspace's state.
        self._control = asyncio.Lock()
        self._current: asyncio.Future[int] | None = None  # the step executing now
        self._step_number = 0  # of the step in progress, from 1
        self._timers: list[asyncio.TimerHandle] = []
        self._interrupts: set[asyncio.Task[None]] = set()
        self._log = run_logger(log, spec.run_id)

    @property
    def status(self) -> RunStatus:
        """The status the run is in here."""
        return self._state

    @property
    def ended(self) -> bool:
        """True once the terminal status is published."""
        return self._ended

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    async def execute(self) -> Outcome:
        """Runs to the end, publishes the terminal status and returns it, then removes the
        workspace. When cancelled (the runner is shutting down) or abandoned, the workspace
        is removed and nothing final is published: the run is handed back, or already
        someone else's."""
        try:
            outcome = await self._execute()
            self._decided = True
        except BaseException:
            await self._clean_up()
            raise
        try:
            if not self._abandoned:
                # Before the removal (~50 ms of the engine's time): that is the runner's
                # housekeeping, and the slot stays taken until it is done.
                await self._finish(outcome)
        finally:
            await self._clean_up()
        return outcome

    async def _clean_up(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in self._interrupts:
            task.cancel()  # the removal below ends everything anyway
        if self._workspace is not None:
            # Shielded: a second cancellation must not leave the workspace behind.
            await asyncio.shield(self._workspace.remove())

    async def _execute(self) -> Outcome:
        spec = self.spec
        if problem := specs.problem(spec):
            return Outcome(RunStatus.FAILED, problem)
        if problem := await self._take_secrets():
            return Outcome(RunStatus.FAILED, problem)
        spec = self.spec
        self._limits = specs.limits(spec.quotas)  # problem() found them well-formed
        if self._halt:
            return self._halt
        try:
            self._workspace = await self._executor.prepare(
                spec.run_id,
                spec.image,
                spec.vars,
                self._report.say,
                attempt=spec.attempt,
                limits=self._limits,
                user=spec.user,
            )
        except PrepareFailed as exc:
            return Outcome(RunStatus.FAILED, str(exc))
        if self._halt:  # asked while the image was pulled or the workspace made
            return self._halt
        # Bob's "initialized": the image and the container are ready, no step has run yet.
        # Both go with the first step's line and what follows within the reporter's
        # linger (for a short step, its end and the run's): one message, not several.
        await self._report.status(RunStatus.INITIALIZED, wait=False)
        async with self._control:
            self._state = RunStatus.RUNNING
            await self._report.status(RunStatus.RUNNING, wait=False)
        if spec.timeout_s:
            self._after(
                spec.timeout_s,
                lambda: (
                    f"the run exceeded the pipeline timeout of {spec.timeout_s} s "
                    f"during step {self._step_number}"
                ),
            )
        elif default_s := self._tuning.run_timeout_s:
            # No run goes on for ever: the runner's default, which the pipeline's overrides.
            self._after(
                default_s,
                lambda: (
                    f"the run exceeded the runner's default timeout of {default_s} s "
                    f"(BOB_RUN_TIMEOUT_S) during step {self._step_number}"
                ),
            )
        for index, step in enumerate(spec.steps):
            self._step_number = index + 1
            await self._resumed.wait()
            if self._halt:
                break
            failure = await self._run_step(self._workspace, index, step)
            if self._halt:
                break
            if failure:
                return Outcome(RunStatus.FAILED, failure)
        return self._halt or Outcome(RunStatus.PASSED)

    def held(self, claim_secret: bytes) -> None:
        """The run is claimed, with this secret: it proves the claim to get the secrets."""
        self._claim_secret = claim_secret

    async def _take_secrets(self) -> str:
        """Fetches the values of the run's secrets into its spec, and has the log mask them
        and the secret-looking plain vars (masking.py); why the run cannot go on, or ""."""
        spec = self.spec
        values: Mapping[str, str] = {}
        if needed := specs.secret_names(spec):
            fetch = self._secrets
            if fetch is None:
                return "the run uses secrets, which this runner cannot fetch"
            try:
                values = (
                    await until_done(
                        lambda: fetch(spec.run_id, spec.attempt, self._claim_secret),
                        what="entities for the run's secrets",
                        errors=EntitiesUnavailable,
                        log=self._log,
                        give_up_s=SECRETS_GIVE_UP_S,
                    )
                    or {}
                )
            except (EntitiesRefused, EntitiesUnavailable) as exc:
                return f"the run's secrets could not be fetched: {exc}"
            if missing := sorted(needed - values.keys()):
                return f"the run's secrets could not be fetched: {', '.join(missing)} missing"
        self._redactor.add(values.values())
        plain = [spec.vars, *(step.vars for step in spec.steps)]
        short: set[str] = set()
        for variables in plain:
            found, too_short = masking.secret_looking(variables, self._redacted_vars)
            self._redactor.add(found)
            short.update(too_short)
        self.spec = specs.with_secrets(spec, values)
        if short:
            await self._report.say(
                f"not masked in this log, shorter than {masking.MIN_VAR_LENGTH} characters: "
                + ", ".join(sorted(short))
            )
        return ""

    async def _run_step(self, workspace: Workspace, index: int, step: StepSpec) -> str:
        """Why the step failed, or ""."""
        number = index + 1
        if step.needs_resource:
            try:
                await self._transfers.place(workspace, step.needs_resource)
            except TransferFailed as exc:
                return f"step {number} needs resource {step.needs_resource!r}: {exc}"
            if self._halt:
                return ""
        timer = None
        if step.timeout_s:
            timer = self._after(
                step.timeout_s, lambda: f"step {number} exceeded its timeout of {step.timeout_s} s"
            )
        last = index == len(self.spec.steps) - 1
        try:
            exit_code = await self._step(workspace, index, step)
        except StepFailed as exc:
            if gone := await self._gone(workspace, None, last=last):
                return f"{gone} during step {number}"
            return f"step {number} could not run: {exc}"
        finally:
            if timer is not None:
                timer.cancel()
        if exit_code != 0:
            return await self._exit_reason(workspace, number, exit_code, last=last)
        if step.produces_artifact is not None and not self._halt:
            try:
                await self._transfers.upload(
                    workspace, step.produces_artifact, step.artifact_source()
                )
            except TransferFailed as exc:
                return f"step {number} produces artifact {step.produces_artifact.name!r}: {exc}"
        return ""

    async def _gone(self, workspace: Workspace, exit_code: int | None, *, last: bool) -> str:
        """Why the workspace died beneath the step (its container killed or exited, its
        engine gone), "" when the step's end was its own or the run's halt."""
        if self._halt is not None:
            return ""
        return await workspace.gone(exit_code, last=last)

    async def _exit_reason(
        self, workspace: Workspace, number: int, exit_code: int, *, last: bool
    ) -> str:
        # Asked of a workspace with a memory limit: an out-of-memory kill is the reason people
        # otherwise hunt for behind a bare 137. Not after a stop or a timeout, whose own
        # kill is the reason (and whose 137 would have the question wait for nothing).
        halted = self._halt is not None
        if not halted and (memory := await workspace.out_of_memory(exit_code)):
            limit = format_memory(memory)
            if exit_code == KILLED:
                return f"step {number} killed: out of memory (limit {limit})"
            return (
                f"step {number} exited with {exit_code} after a process of it was "
                f"killed: out of memory (limit {limit})"
            )
        if gone := await self._gone(workspace, exit_code, last=last):
            return f"{gone} during step {number}"
        return f"step {number} exited with {exit_code}"

    async def _step(self, workspace: Workspace, index: int, step: StepSpec) -> int:
        # With the statuses before it, and with the step's end when it is short (or its
        # first output), rather than in a message of its own.
        await self._report.say(f"step {index + 1}/{len(self.spec.steps)}: {step.cmd}", wait=False)
        sink = LogSink(
            asyncio.get_running_loop(),
            batch_lines=self._batch_lines,
            flush_s=self._flush_s,
            redactor=self._redactor or None,
            budget=self._log_budget,
            max_line_bytes=self._tuning.log_line_max_bytes,
        )
        started = time.monotonic()
        last = index == len(self.spec.steps) - 1
        execution = asyncio.ensure_future(
            workspace.exec(step.cmd, step.vars, sink, last=last, cwd=step.directory)
        )
        execution.add_done_callback(lambda _: sink.ensure_ended())
        self._current = execution
        try:
            async with aclosing(sink.batches()) as batches:
                async for batch in batches:
                    await self._report.logs(batch)
            exit_code = await execution
        finally:
            self._current = None
            if not execution.done():
                sink.abort()
                execution.cancel()
        duration_ms = int((time.monotonic() - started) * 1000)
        # Goes with the next step's line or the run's last words, or soon on its own.
        await self._report.step_finished(index, exit_code, duration_ms, wait=False)
        self._log.info(
            "step %d/%d exited with %d after %d ms",
            index + 1,
            len(self.spec.steps),
            exit_code,
            duration_ms,
        )
        return exit_code

    async def _finish(self, outcome: Outcome) -> None:
        async with self._control:
            self._state = outcome.status
            name = status_name(outcome.status)
            summary = f"run {name}: {outcome.reason}" if outcome.reason else f"run {name}"
            self._log.info("%s", summary)
            # In one message with the terminal status, which waits for the broker.
            await self._report.say(summary, wait=False)
            await self._report.status(outcome.status, outcome.reason)
            self._ended = True

    async def fail(self, reason: str) -> None:
        """Ends a run that broke down unexpectedly as FAILED, unless it has ended."""
        if self._state not in TERMINAL and not self._abandoned:
            await self._finish(Outcome(RunStatus.FAILED, reason))

    # --- halting: stop and timeouts ------------------------------------------------

    def _after(self, seconds: float, reason: Callable[[], str]) -> asyncio.TimerHandle:
        """A timer that fails the run with reason() once `seconds` have passed: what runs
        is killed at once (a timeout has no grace)."""

        def expire() -> None:
            why = reason()
            if self._halt_with(Outcome(RunStatus.FAILED, why), graceful=False):
                self._log.info("%s", why)

        timer = asyncio.get_running_loop().call_later(seconds, expire)
        self._timers.append(timer)
        return timer

    def _halt_with(self, outcome: Outcome, *, graceful: bool) -> bool:
        """Decides how the run ends, unless something did already; then interrupts what
        runs, in a task of its own, so the caller (the control listener) is not held."""
        if self._halt is not None or self._state in TERMINAL:
            return False
        self._halt = outcome
        self._abort.set()
        self._resumed.set()  # a paused run waiting between steps goes on to its end
        task = asyncio.create_task(self._interrupt(graceful))
        self._interrupts.add(task)
        task.add_done_callback(self._interrupts.discard)
        return True

    async def _interrupt(self, graceful: bool) -> None:
        workspace = self._workspace
        if workspace is None:  # not made yet: _execute checks _halt once it is
            return
        step = self._current
        if graceful and step is not None and not step.done():
            await workspace.terminate()
            await asyncio.wait({step}, timeout=self._tuning.stop_grace_s)
            if step.done():
                return
            self._log.info(
                "the step is still running %.1f s after SIGTERM: killing it",
                self._tuning.stop_grace_s,
            )
        await workspace.kill()

    # --- control commands, called while execute() runs ------------------------------

    async def stop(self) -> None:
        """SIGTERM to what runs now, SIGKILL after the grace; no further step starts,
        nothing more is uploaded and the run ends STOPPED."""
        self.commands += 1
        if self._halt_with(Outcome(RunStatus.STOPPED, STOPPED_REASON), graceful=True):
            self._log.info("stop requested")

    async def pause(self) -> None:
        self.commands += 1
        async with self._control:
            if self._state != RunStatus.RUNNING or self._halt is not None:
                self._log.info("not pausing: run is %s", self._state_name())
                return
            assert self._workspace is not None
            try:
                await self._workspace.pause()
            except RunnerError as exc:
                self._log.warning("%s", exc)
                return
            self._state = RunStatus.PAUSED
            self._resumed.clear()
            await self._report.status(RunStatus.PAUSED)

    async def resume(self) -> None:
        self.commands += 1
        async with self._control:
            if self._state != RunStatus.PAUSED or self._halt is not None:
                self._log.info("not resuming: run is %s", self._state_name())
                return
            assert self._workspace is not None
            try:
                await self._workspace.resume()
            except RunnerError as exc:
                self._log.warning("%s", exc)
                return
            self._state = RunStatus.RUNNING
            self._resumed.set()
            await self._report.status(RunStatus.RUNNING)

    async def abandon(self) -> None:
        """The run is not this runner's any more (entities gave it to another attempt, or
        ended it): what runs is killed at once, the workspace removed, and nothing more is
        published. Ignored once the run has decided how it ends: its last events are due."""
        self.commands += 1
        if self._decided or self._halt is not None or self._state in TERMINAL:
            self._log.info("not abandoning: the run has decided how it ends")
            return
        self._abandoned = True
        self._report.mute()
        self._halt_with(Outcome(RunStatus.FAILED, "abandoned"), graceful=False)
        self._log.warning("abandoned: the run is not this runner's any more")

    def _state_name(self) -> str:
        return self._state.name
