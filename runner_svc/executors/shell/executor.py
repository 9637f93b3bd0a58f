"""The shell executor (BOB_RUNNER_TYPE=shell), for hosts without Docker: each run gets a
temporary directory and a uid of its own (identity.py), each step is a local `/bin/sh -c`
process in a process group of its own (so a stop, a pause or a timeout reaches the step).

Steps never run as root nor as the runner: the runner starts as root and runs them as the
run's uid, without supplementary groups, with no_new_privs and umask 077, in the run's
directory (0700, the run's). When the run ends, is stopped or times out, every process of
that uid is killed, wherever it went (identity.kill_all). Resources are unpacked and
artifacts packed with the run's file identity, so a step cannot make the runner write or
read beyond what the run itself may.

NOT isolated beyond that: steps see the host's file system (as an unprivileged user),
network and processes. Their environment is the run's own: PATH, HOME and TMPDIR (both
the run's directory) and the pipeline's and step's vars; the runner's own variables, which
hold the queue's password, are not passed on. The pipeline's image is ignored, and so are
its quotas: there is no container to hold a step to them (the run's log says so).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bob_common.config import RunnerSettings
from bob_pb import messages_pb2
from runner_svc.errors import (
    ExecutorMisconfigured,
    ExecutorUnavailable,
    PrepareFailed,
    RunnerError,
    StepFailed,
    TransferFailed,
)
from runner_svc.executors import tarsafe
from runner_svc.executors.shell import identity
from runner_svc.executors.shell.identity import RunUid, files_as, iterate_as
from runner_svc.reporting.logsink import LogSink
from runner_svc.reporting.runlog import run_logger
from runner_svc.spec import NO_LIMITS, Limits

log = logging.getLogger(__name__)
T = TypeVar("T")

SHELL = "/bin/sh"
READ_CHUNK = 64 * 1024
# Once a step's process has exited, its output ends when nothing came for this long:
# something it left running in the background may hold its pipes open for ever.
EXITED_QUIET_S = 0.1


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


class ShellExecutor:
    def __init__(
        self, settings: RunnerSettings, root: str | None = None, lock_dir: str = identity.LOCK_DIR
    ) -> None:
        if os.geteuid() != 0:
            # As itself, a step could read the runner's memory and credentials, and what it
            # left running could not be told from the runner's own processes.
            raise ExecutorMisconfigured(
                "the shell runner must start as root: it runs each run's steps as a uid of "
                "its own (BOB_SHELL_RUNNER_UIDS), never as root nor as the runner's user"
            )
        identity.setpriv()  # found now, or the runner refuses to start
        self.uids = identity.UidPool(*settings.shell_uids, lock_dir)
        self._settings = settings
        self._root = root or tempfile.gettempdir()
        # Directories of this runner start so, which finds them again after a crash.
        self._prefix = f"bob-{_safe(settings.runner_id)}-"
        self._threads = ThreadPoolExecutor(settings.capacity + 2, thread_name_prefix="shell")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args))

    async def start(self) -> None:
        if not os.access(SHELL, os.X_OK):
            raise ExecutorUnavailable(f"{SHELL} is not executable")
        # Root's supplementary groups would widen what a thread with a run's file identity
        # (files_as) may open; root needs none.
        os.setgroups([])
        self.uids.prepare()
        # Before the directories: nothing of a dead runner's runs may still write in them.
        if swept := await asyncio.to_thread(self.uids.sweep):
            log.warning("killed the processes of uid(s) %s, left by a runner gone", swept)
        removed = await asyncio.to_thread(self._remove_own_directories)
        if removed:
            log.warning(
                "removed %d directory(ies) left by runner %s", removed, self._settings.runner_id
            )

    async def engine_problem(self) -> str:
        return ""  # the local host is the engine: it answers while the runner does

    def _remove_own_directories(self) -> int:
        found = [
            e.path
            for e in os.scandir(self._root)
            if e.name.startswith(self._prefix) and e.is_dir(follow_symlinks=False)
        ]
        for path in found:
            _rmtree(path)
        return len(found)

    async def prepare(
        self,
        run_id: str,
        image: str,
        env: Mapping[str, str],
        say: Callable[[str], Awaitable[None]],
        *,
        attempt: int,
        limits: Limits = NO_LIMITS,
        user: str = "",  # a shell runner's steps run as its own uids (shell_uids)
    ) -> ShellWorkspace:
        await say(
            f"shell runner: steps run as local processes, not isolated; "
            f"the image {image} is ignored"
        )
        if limits:
            await say("shell runner: the pipeline's quotas do not apply (no container to limit)")
        try:
            held = await self.run(self.uids.acquire)
        except OSError as exc:
            raise PrepareFailed(f"could not take a uid for the run: {exc}") from exc
        try:
            path = tempfile.mkdtemp(prefix=f"{self._prefix}{_safe(run_id)}-", dir=self._root)
            os.chown(path, held.uid, held.uid)  # 0700 from mkdtemp: the run's alone
        except OSError as exc:
            await self.run(self.uids.release, held)
            raise PrepareFailed(f"could not make a working directory: {exc}") from exc
        run_logger(log, run_id).info("working directory %s, uid %d", path, held.uid)
        workspace = ShellWorkspace(self, path, run_id, env, held)
        try:
            await say(f"shell runner: steps run as uid {held.uid}, unprivileged")
        except BaseException:
            await workspace.remove()  # gives the uid back
            raise
        return workspace

    async def sweep(self, orphaned: Callable[[str, int | None], Awaitable[bool]]) -> int:
        """Nothing: a directory names its runner only, which start() and close() clean up."""
        return 0

    async def close(self) -> None:
        await asyncio.to_thread(self._remove_own_directories)
        await asyncio.to_thread(self._threads.shutdown)


class ShellWorkspace:
    """One run's directory, its uid and the process groups of its steps."""

    def __init__(
        self,
        executor: ShellExecutor,
        path: str,
        run_id: str,
        env: Mapping[str, str],
        held: RunUid,
    ) -> None:
        self._executor = executor
        self.path = path
        self.uid = held.uid
        self._held: RunUid | None = held
        self._env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": path,
            "TMPDIR": path,
            **env,
        }
        self._log = run_logger(log, run_id)
        # Guards the fields below: the loop signals while a worker thread spawns.
        self._lock = threading.Condition()
        self._groups: list[int] = []  # every step's process group, for the final kill
        self._current: subprocess.Popen[bytes] | None = None
        self._frozen = False
        # Set by terminate() and kill(): no step starts any more.
        self._halted = False

    async def exec(
        self,
        cmd: str,
        env: Mapping[str, str],
        output: LogSink,
        *,
        last: bool = False,
        cwd: str = "",
    ) -> int:
        return await self._executor.run(self._exec, cmd, env, output, cwd)

    async def gone(self, exit_code: int | None, *, last: bool) -> str:
        # A step's process that dies is its exit code; the directory has no life of its own.
        return ""

    async def out_of_memory(self, exit_code: int) -> int:
        return 0  # no memory limit here

    def _exec(self, cmd: str, env: Mapping[str, str], output: LogSink, cwd: str) -> int:
        try:
            with self._lock:
                # A pause may have come between the run's last look and now: wait it out.
                while self._frozen and not self._halted:
                    self._lock.wait(0.5)
                if self._halted:  # a stop or a timeout came first: nothing more starts
                    raise StepFailed("the run is being stopped")
                try:
                    process = subprocess.Popen(
                        # no_new_privs: no set-uid program gives the step another uid.
                        identity.as_uid(self.uid, [SHELL, "-c", cmd]),
                        # Not checked to stay inside: the step may go anywhere its uid may.
                        cwd=os.path.join(self.path, cwd),
                        env={**self._env, **env},
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        start_new_session=True,  # its own process group, pgid = pid
                        umask=0o077,
                    )
                except OSError as exc:
                    raise StepFailed(str(exc)) from exc
                self._groups.append(process.pid)
                self._current = process
            try:
                _pump(process, output)
                return process.wait()
            finally:
                with self._lock:
                    self._current = None
        finally:
            output.close()

    def _signal(self, pgid: int, signum: int) -> None:
        try:
            os.killpg(pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # the group has ended

    # Signalling takes microseconds: these hold the lock on the event loop, where a
    # worker may hold it only as long as it takes to spawn a process.

    async def terminate(self) -> None:
        with self._lock:
            self._halted = True
            if self._current is not None:
                self._signal(self._current.pid, signal.SIGTERM)
                if self._frozen:  # a stopped process handles SIGTERM once continued
                    self._signal(self._current.pid, signal.SIGCONT)
            self._frozen = False
            self._lock.notify_all()

    async def kill(self) -> None:
        with self._lock:
            self._halted = True
            for pgid in self._groups:
                self._signal(pgid, signal.SIGKILL)
            self._lock.notify_all()
        # Then whatever left the steps' groups (setsid, double forks): all of the run's uid.
        try:
            await asyncio.to_thread(identity.kill_all, self.uid)
        except (OSError, subprocess.SubprocessError, RunnerError) as exc:
            self._log.error("could not kill the processes of uid %d: %s", self.uid, exc)

    async def pause(self) -> None:
        with self._lock:
            if self._current is not None:
                self._signal(self._current.pid, signal.SIGSTOP)
            self._frozen = True

    async def resume(self) -> None:
        with self._lock:
            if self._current is not None:
                self._signal(self._current.pid, signal.SIGCONT)
            self._frozen = False
            self._lock.notify_all()

    async def put_archive(self, archive: Callable[[], Iterator[bytes]]) -> None:
        await self._executor.run(self._put, archive)

    def _put(self, archive: Callable[[], Iterator[bytes]]) -> None:
        try:
            # What it writes is the run's, and nowhere the run could not write; the
            # archive is downloaded as the runner.
            chunks = iterate_as(os.geteuid(), archive())
            with files_as(self.uid):
                tarsafe.extract(chunks, self.path, tarsafe.REWRITTEN)
        except OSError as exc:
            raise TransferFailed(f"could not write into the working directory: {exc}") from exc

    async def get_archive(self, path: str, consume: Callable[[Iterator[bytes]], None]) -> None:
        await self._executor.run(self._get, path, consume)

    def _get(self, path: str, consume: Callable[[Iterator[bytes]], None]) -> None:
        # Reads nothing the run could not; uploaded as the runner.
        chunks = iterate_as(self.uid, tarsafe.pack(self.path, path))
        try:
            first = next(chunks)
        except FileNotFoundError as exc:
            raise TransferFailed(f"{path} does not exist in the working directory") from exc
        except OSError as exc:
            raise TransferFailed(f"could not read {path}: {exc}") from exc

        def read() -> Iterator[bytes]:
            try:
                yield from itertools.chain([first], chunks)
            except OSError as exc:
                raise TransferFailed(f"reading {path} broke off: {exc}") from exc

        consume(read())

    async def remove(self) -> None:
        await self.kill()  # what steps left running in the background, too
        try:
            # Nothing of the run's uid runs any more to swap a directory for a link.
            await asyncio.to_thread(_rmtree, self.path)
            self._log.info("working directory %s removed", self.path)
        except OSError as exc:
            self._log.error("could not remove %s: %s", self.path, exc)
        # Only now may another run have the uid: it owned the directory.
        held, self._held = self._held, None
        if held is not None:
            try:
                await asyncio.to_thread(self._executor.uids.release, held)
            except (OSError, subprocess.SubprocessError, RunnerError) as exc:
                self._log.error("could not release uid %d: %s", held.uid, exc)


def _pump(process: subprocess.Popen[bytes], output: LogSink) -> None:
    """Copies the process's stdout and stderr to `output` until both end, or until the
    process has exited and they are quiet."""
    assert process.stdout is not None and process.stderr is not None
    streams = {
        process.stdout.fileno(): messages_pb2.STDOUT,
        process.stderr.fileno(): messages_pb2.STDERR,
    }
    with selectors.DefaultSelector() as selector:
        for fd, stream in streams.items():
            selector.register(fd, selectors.EVENT_READ, stream)
        while selector.get_map():
            # Looked at before the wait: whatever the step wrote before it exited is then
            # already in the pipe, so a quiet wait after an exit means its output is over.
            # (Looking after the wait lost a line written between the two.)
            exited = process.poll() is not None
            ready = selector.select(EXITED_QUIET_S)
            for key, _ in ready:
                data = os.read(key.fd, READ_CHUNK)
                if data:
                    output.write(key.data, data)
                else:
                    selector.unregister(key.fd)
            if not ready and exited:
                break
    process.stdout.close()
    process.stderr.close()


def _rmtree(path: str) -> None:
    """shutil.rmtree (which follows no link), through directories a step made read-only
    (the runner is root), and quiet about what is gone already: the run's own removal and
    the runner's closing sweep may meet."""

    def gone_already(_fn: object, _path: str, exc_info: tuple) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=gone_already)
