"""One run's container: steps as execs in it, signals to its processes, and archives
in and out of its working directory. Made by DockerExecutor.prepare, whose two thread
pools it runs its blocking docker SDK calls on (through Engine, all it knows of it), and
whose EngineCalls it awaits for the calls every run makes, the last step's among them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import docker.errors
from docker.models.containers import Container
from docker.utils.socket import STDERR, STDOUT

from bob_common import pipeline_rules
from bob_pb import messages_pb2
from runner_svc.errors import RunnerError, StepFailed, TransferFailed
from runner_svc.executors import tarsafe
from runner_svc.executors.docker import limits as docker_limits
from runner_svc.executors.docker.client import (
    DOCKER_ERRORS,
    Attached,
    EngineCalls,
    explain,
    unreachable,
)
from runner_svc.executors.docker.entry import final_step_input
from runner_svc.reporting.logsink import LogSink
from runner_svc.reporting.runlog import run_logger

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long an exec may still report Running after its output has ended.
EXIT_CODE_WAIT_S = 2.0
# SIGTERM to every process of the container but pid 1 (entry.py) and the kill itself:
# in a PID namespace, that is exactly the steps' processes. `kill` is a builtin of every
# /bin/sh.
TERMINATE = ["/bin/sh", "-c", "kill -TERM -1"]
ARCHIVE_CHUNK = 64 * 1024
# How long starting an exec may take before a pause stops waiting for it.
EXEC_START_WAIT_S = 10.0
# How often the last step's attach tries the lock again while a pause or SIGTERM holds
# it, and looks again whether the run was halted while it waits out a pause.
LOCK_RETRY_S = 0.01
THAW_RECHECK_S = 0.5
# Exit codes above this are a signal's (128 + its number): worth asking the engine whether
# the container was killed from outside.
SIGNALLED = 128


class Engine(Protocol):
    """What a workspace asks of its executor (DockerExecutor): its two thread pools for
    blocking SDK calls, and the removal of a container."""

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) on the pool of short calls."""
        ...

    async def stream(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on the pool of long streams (steps and archives)."""
        ...

    async def discard(self, container: Container) -> bool:
        """Removes the container; False when the engine refused."""
        ...


class DockerWorkspace:
    """One run's container."""

    def __init__(
        self,
        executor: Engine,
        container: Container,
        run_id: str,
        workdir: str,
        env: Mapping[str, str],
        *,
        calls: EngineCalls,
        memory: int = 0,
        user: str = "",
    ) -> None:
        self._executor = executor
        # The container's memory limit in bytes (0: none), and the pipeline's user ("":
        # the image's), who is given the working directory.
        self._memory = memory
        self._user = user
        # The pipeline's variables, given to every exec (the container has none of its own).
        self._env = dict(env)
        self._container = container
        self._api = container.client.api
        # What the last step needs of the engine every run, on the loop (client.py).
        self._calls = calls
        self._workdir = workdir
        self._log = run_logger(log, run_id)
        # Starting an exec and freezing the container exclude each other: in a frozen
        # container the engine refuses an exec (409) or, when the freeze lands while runc
        # is starting one, freezes its `runc init` half-way, and then hangs on that
        # container for good. So the lock is held around an exec's creation, pause,
        # resume and SIGTERM; and a freeze or a SIGTERM first waits until the exec last
        # started has its process (`_starting`). Only they wait: watching every exec
        # start cost ~10 inspections, half the runner's CPU in a run of one short step.
        self._lock = threading.Condition()
        self._frozen = False  # guarded by _lock
        self._starting: str | None = None  # guarded by _lock
        # The last step's attach waiting out a pause, woken by its end; guarded by _lock.
        self._thaw_waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        # Set by terminate() and kill(): no exec starts any more.
        self._halted = False
        # When the step in progress started (epoch seconds): the kills after it are its.
        self._step_started = time.time()

    async def exec(
        self,
        cmd: str,
        env: Mapping[str, str],
        output: LogSink,
        *,
        last: bool = False,
        cwd: str = "",
    ) -> int:
        # The container confines the step, so a directory a step replaced with a link
        # leads nowhere outside it.
        workdir = posixpath.join(self._workdir, cwd) if cwd else self._workdir
        self._step_started = time.time()
        if last and (given := final_step_input(cmd, {**self._env, **env}, workdir)):
            return await self._final(given, output)
        return await self._executor.stream(self._exec, cmd, env, output, workdir)

    async def out_of_memory(self, exit_code: int) -> int:
        if not self._memory:
            return 0
        try:
            killed = await self._executor.call(
                docker_limits.oom_killed, self._api, self._container.id, exit_code
            )
        except DOCKER_ERRORS as exc:
            self._log.warning("could not tell whether the step ran out of memory: %s", explain(exc))
            return 0
        return self._memory if killed else 0

    async def give_to_user(self) -> None:
        """Makes the pipeline's user the owner of the working directory, which the engine
        made as root: the engine unpacks a tar of the directory, owned by them, over it.
        (An exec as root could not: a container of a non-root user has no capabilities
        left for root's execs.) StepFailed when the engine refuses."""
        if not self._user:
            return
        parent, name = posixpath.split(self._workdir.rstrip("/"))
        entry = tarsafe.directory(name, pipeline_rules.owner(self._user))
        try:
            await self._executor.call(self._api.put_archive, self._container.id, parent, entry)
        except DOCKER_ERRORS as exc:
            raise StepFailed(
                f"could not give the working directory to user {self._user!r}: {explain(exc)}"
            ) from exc

    def _await_thaw(self) -> None:
        """Under the lock: waits out a pause that came between the run's last look and
        now, and refuses to start anything once the run is halted."""
        while self._frozen and not self._halted:
            self._lock.wait(0.5)
        if self._halted:
            raise StepFailed("the run is being stopped")

    def _start(self, cmd: str, env: Mapping[str, str], workdir: str) -> tuple[str, Any]:
        with self._lock:
            self._await_thaw()
            exec_id = self._api.exec_create(
                self._container.id,
                ["/bin/sh", "-c", cmd],
                environment={**self._env, **env} or None,
                workdir=workdir,
            )["Id"]
            chunks = self._api.exec_start(exec_id, stream=True, demux=True)
            self._starting = exec_id
            return exec_id, chunks

    def _settle_start(self) -> None:
        """Under the lock: returns once the exec last started has its process (or has
        already exited), since the HTTP answer to exec_start comes before that. The
        engine sets the exec's Pid once the runtime has started it; its Running flag, set
        before it even asks the runtime, says nothing of that."""
        exec_id, self._starting = self._starting, None
        if exec_id is None:
            return
        deadline = time.monotonic() + EXEC_START_WAIT_S
        while time.monotonic() < deadline:
            info = self._api.exec_inspect(exec_id)
            if info.get("Pid") or info.get("ExitCode") is not None:
                return
            time.sleep(0.005)
        self._log.warning("exec %s not seen running after %.0f s", exec_id[:12], EXEC_START_WAIT_S)

    def _exec(self, cmd: str, env: Mapping[str, str], output: LogSink, workdir: str) -> int:
        try:
            exec_id, chunks = self._start(cmd, env, workdir)
            try:
                for stdout, stderr in chunks:
                    if stdout:
                        output.write(messages_pb2.STDOUT, stdout)
                    if stderr:
                        output.write(messages_pb2.STDERR, stderr)
            finally:
                # The SDK leaves the exec's socket open; closing the response closes it.
                chunks._response.close()
            return self._exit_code(exec_id)
        except DOCKER_ERRORS as exc:
            raise StepFailed(_failure(exc)) from exc
        finally:
            output.close()

    async def _final(self, given: bytes, output: LogSink) -> int:
        """The last step, handed to the container's entry (entry.py): its output is
        the container's, its exit code the container's. All on the loop: the attach, the
        inspect, the output copied into `output` as it comes, and the wait."""
        ended = False
        try:
            attached = await self._attach()
            try:
                # Attached to a container that is not running, the stream waits for it to
                # start again, for ever: e.g. a spare the engine's restart killed. Once
                # attached to a running one, the stream ends when it stops. So this look
                # comes after the attach, and the step is handed over only after it.
                state = (await self._calls.inspect_container(self._container.id))["State"]
                if not state.get("Running"):
                    raise StepFailed(
                        f"the build container is not running (exit {state.get('ExitCode')})"
                    )
                await attached.send(given)
                await _copy(attached, output)
            finally:
                attached.close()
            ended = True
            await output.end()
            return int((await self._calls.wait(self._container.id))["StatusCode"])
        except DOCKER_ERRORS as exc:
            raise StepFailed(_failure(exc)) from exc
        finally:
            if not ended:
                await output.end()

    async def _attach(self) -> Attached:
        """The container's stdio, attached under the lock once no pause holds it (as an
        exec is started, _start): a freeze waits for the attach, the attach waits out a
        freeze, and nothing is attached once the run is halted. The loop only ever tries
        the lock, never waits for it: a pause holds it over its engine calls. Held over
        the attach's await by the loop's thread, which takes it nowhere else."""
        while True:
            if not self._lock.acquire(blocking=False):
                await asyncio.sleep(LOCK_RETRY_S)  # a pause or a SIGTERM is under way
                continue
            try:
                if self._halted:
                    raise StepFailed("the run is being stopped")
                if not self._frozen:
                    self._thaw_waiter = None
                    return await self._calls.attach(self._container.id)
                thawed = asyncio.Event()
                self._thaw_waiter = (asyncio.get_running_loop(), thawed)
            finally:
                self._lock.release()
            # Woken by the resume (_freeze); a kill is seen within THAW_RECHECK_S.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(THAW_RECHECK_S):
                    await thawed.wait()

    def _wake_attach(self) -> None:
        """Under the lock, on any thread: a waiting _attach looks again."""
        if self._thaw_waiter is not None:
            loop, thawed = self._thaw_waiter
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(thawed.set)

    def _exit_code(self, exec_id: str) -> int:
        # The engine may still report the exec as running for a moment after its output
        # has ended.
        deadline = time.monotonic() + EXIT_CODE_WAIT_S
        while True:
            info = self._api.exec_inspect(exec_id)
            if not info.get("Running") or time.monotonic() > deadline:
                code = info.get("ExitCode")
                return -1 if code is None else int(code)
            time.sleep(0.01)

    async def gone(self, exit_code: int | None, *, last: bool) -> str:
        if self._halted:  # stopped or killed by the runner itself: its reason stands
            return ""
        if last and exit_code is not None and 0 <= exit_code <= SIGNALLED:
            return ""  # the step's own end, which stops the container (see below)
        try:
            state = (await self._calls.inspect_container(self._container.id))["State"]
            if state.get("Running"):
                return ""
            code = state.get("ExitCode")
            if not last:
                # Between steps the entry only waits for the last one: it never exits by
                # itself.
                return f"the build container exited unexpectedly (exit {code})"
            return await self._executor.call(self._killed_from_outside, code)
        except docker.errors.NotFound:
            return "the build container was removed from outside"
        except DOCKER_ERRORS as exc:
            return f"the Docker engine became unreachable: {explain(exc)}"

    def _killed_from_outside(self, code: int | None) -> str:
        # The last step is the entry's, whose end stops the container: only a kill from
        # outside (docker kill, the engine stopping) tells it apart from the step's own end.
        killed = self._api.events(
            since=int(self._step_started) - 1,
            until=int(time.time()) + 1,
            filters={"container": self._container.id, "event": "kill"},
            decode=True,
        )
        try:
            for event in killed:
                signal = (event.get("Actor") or {}).get("Attributes", {}).get("signal", "?")
                return f"the build container was killed from outside (signal {signal}, exit {code})"
        finally:
            killed.close()
        return ""

    async def kill(self) -> None:
        # Not under the lock: a kill never waits, and it works on a frozen container.
        self._halted = True
        try:
            await self._executor.call(self._container.kill)
            self._log.info("container %s killed", self._container.short_id)
        except DOCKER_ERRORS as exc:  # already gone or stopped: the goal is reached
            self._log.debug("kill: %s", explain(exc))

    async def terminate(self) -> None:
        try:
            await self._executor.call(self._terminate)
            self._log.info(
                "SIGTERM sent to the processes in container %s", self._container.short_id
            )
        except DOCKER_ERRORS as exc:  # kill() follows anyway
            self._log.warning("could not send SIGTERM: %s", explain(exc))

    def _terminate(self) -> None:
        with self._lock:
            self._halted = True
            if self._frozen:  # signals reach a frozen process only once it is thawed
                self._container.unpause()
                self._frozen = False
            self._wake_attach()
            self._settle_start()  # `kill -1` must find the step's process, not runc's
            exec_id = self._api.exec_create(self._container.id, TERMINATE)["Id"]
            self._api.exec_start(exec_id)  # returns once the kill has run

    async def pause(self) -> None:
        try:
            await self._executor.call(self._freeze, True)
        except DOCKER_ERRORS as exc:
            raise RunnerError(f"could not pause: {explain(exc)}") from exc

    async def resume(self) -> None:
        try:
            await self._executor.call(self._freeze, False)
        except DOCKER_ERRORS as exc:
            raise RunnerError(f"could not resume: {explain(exc)}") from exc

    def _freeze(self, frozen: bool) -> None:
        with self._lock:
            if frozen:
                self._settle_start()
                self._container.pause()
            else:
                self._thaw()
            self._frozen = frozen
            self._lock.notify_all()
            self._wake_attach()

    def _thaw(self) -> None:
        try:
            self._container.unpause()
        except docker.errors.APIError:
            # A last step is the container's own process: when it was ending as the pause
            # came, the container stops frozen, and the engine will not unpause a stopped
            # container. Nothing is left to thaw; the step's end is read as usual.
            self._container.reload()
            if self._container.status not in ("exited", "dead"):
                raise

    # Transfers block as long as the bytes flow, so they run on the streams pool, like
    # the steps they alternate with: a run never does both at once.

    async def put_archive(self, archive: Callable[[], Iterator[bytes]]) -> None:
        await self._executor.stream(self._put, archive)

    def _put(self, archive: Callable[[], Iterator[bytes]]) -> None:
        failure: list[Exception] = []

        def stream() -> Iterator[bytes]:
            # The stream's own error (an unsafe entry, a plugin that failed) is the reason
            # the copy broke off, whatever the engine or HTTP library make of it.
            try:
                yield from archive()
            except Exception as exc:
                failure.append(exc)
                raise

        try:
            self._api.put_archive(self._container.id, self._workdir, stream())
        except Exception as exc:
            if failure:
                raise failure[0] from None
            if isinstance(exc, DOCKER_ERRORS):
                raise TransferFailed(f"could not copy into the container: {explain(exc)}") from exc
            raise
        if failure:
            raise failure[0]

    async def get_archive(self, path: str, consume: Callable[[Iterator[bytes]], None]) -> None:
        await self._executor.stream(self._get, path, consume)

    def _get(self, path: str, consume: Callable[[Iterator[bytes]], None]) -> None:
        full = posixpath.join(self._workdir, path)
        try:
            chunks, _ = self._api.get_archive(self._container.id, full, ARCHIVE_CHUNK)
        except docker.errors.NotFound as exc:
            raise TransferFailed(f"{path} does not exist in the working directory") from exc
        except DOCKER_ERRORS as exc:
            raise TransferFailed(f"could not read {path}: {explain(exc)}") from exc

        def read() -> Iterator[bytes]:
            try:
                yield from chunks
            except DOCKER_ERRORS as exc:
                raise TransferFailed(f"reading {path} broke off: {explain(exc)}") from exc

        consume(read())

    async def remove(self) -> None:
        if await self._executor.discard(self._container):
            self._log.info("container %s removed", self._container.short_id)


async def _copy(attached: Attached, output: LogSink) -> None:
    """The container's output into `output` until it ends; while `output` is full, the
    stream is not read, and the step blocks on its full pipe."""
    while (piece := await attached.read()) is not None:
        stream, data = piece
        if stream == STDOUT:
            await output.feed(messages_pb2.STDOUT, data)
        elif stream == STDERR:
            await output.feed(messages_pb2.STDERR, data)


def _failure(exc: BaseException) -> str:
    """Why a step broke off on an engine error. Said here when the engine could not be
    reached: asked afterwards, an engine that is shutting down may still answer on a
    connection kept alive, and show the container running."""
    if unreachable(exc):
        return f"the Docker engine became unreachable: {explain(exc)}"
    return explain(exc)
