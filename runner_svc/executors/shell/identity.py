"""Who a shell run's steps run as, and how everything they started is ended.

Each run gets a uid of its own from BOB_SHELL_RUNNER_UIDS (with the group of the same
number and no other groups), held through a lock file in LOCK_DIR so that the runs of
every shell runner on the host differ. The kernel then tells runs apart: a run's
directory is its uid's alone (0700), and a run's processes, whatever they became (a
background job, a `setsid` child, a double-forked daemon), are the processes of its uid.
A process without privileges cannot change its uid, and steps run with no_new_privs, so
no set-uid program hands one a different uid either.

Ending them all is a kill(-1, SIGKILL) sent *as that uid*: the kernel signals every
process the sender may signal, those of the same uid, in one pass under its task-list
lock, so nothing forks past it. (Chosen over a cgroup, which needs a delegated cgroup v2
hierarchy that many hosts lack, and over marking processes with an environment variable,
which a step sheds by exec'ing with a clean environment.)
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import logging
import os
import pwd
import shutil
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from runner_svc.errors import ExecutorMisconfigured, PrepareFailed, RunnerError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Lock files, one per uid in use, so that shell runners on one host never share a uid. A
# runner that dies releases its locks with its file descriptors.
LOCK_DIR = "/run/bob-shell-runner"
# How long the processes of a uid may take to die after SIGKILL (uninterruptible sleeps).
KILL_WAIT_S = 5.0


@dataclass
class RunUid:
    """A uid held for one run; its group has the same number."""

    uid: int
    lock_fd: int


# kill(-1, SIGKILL) by the shell's builtin kill (dash, bash and busybox agree on this
# form; procps' kill(1) does not take it). The shell itself is spared by the kernel.
KILL_ALL = ["/bin/sh", "-c", "kill -9 -1"]


@functools.cache
def setpriv() -> str:
    """setpriv (util-linux), found on PATH; ExecutorMisconfigured without it."""
    found = shutil.which("setpriv")
    if not found:
        raise ExecutorMisconfigured("the shell runner needs setpriv (util-linux) on its PATH")
    return found


def as_uid(uid: int, command: list[str], *, no_new_privs: bool = True) -> list[str]:
    """`command` run as `uid` (its group of the same number, no other groups), the switch
    made by setpriv after exec rather than by subprocess's user=/group=: those make Python
    fork() where it would vfork(), and fork() runs gRPC's at-fork handlers in the child,
    which can abort it (SIGABRT) before it ever execs."""
    if uid == 0:
        raise AssertionError("never as root")
    switch = [setpriv(), f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return [*switch, *(["--no-new-privs"] if no_new_privs else []), "--", *command]


class UidPool:
    """The uids of BOB_SHELL_RUNNER_UIDS; acquire() and release() block (worker threads)."""

    def __init__(self, first: int, last: int, lock_dir: str = LOCK_DIR) -> None:
        self._uids = range(first, last + 1)
        self._lock_dir = lock_dir
        self._check_nobody_elses()

    def _check_nobody_elses(self) -> None:
        """ExecutorMisconfigured for a range holding someone's uid: the runner kills every
        process of its uids."""
        taken = [
            f"{user.pw_name} ({user.pw_uid})"
            for user in pwd.getpwall()
            if user.pw_uid in self._uids and not user.pw_name.startswith("bob")
        ]
        if taken:
            raise ExecutorMisconfigured(
                f"BOB_SHELL_RUNNER_UIDS holds the uids of {', '.join(taken[:5])}: its uids "
                "must be nobody else's (users named bob* are taken as made for it)"
            )

    def prepare(self) -> None:
        """Makes the lock directory, root's alone; refuses one anybody else could write."""
        os.makedirs(self._lock_dir, mode=0o700, exist_ok=True)
        st = os.lstat(self._lock_dir)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise ExecutorMisconfigured(
                f"{self._lock_dir} must be a directory of root's that only root can write"
            )

    def acquire(self) -> RunUid:
        """A uid no other run on this host holds, with nothing of it left running."""
        for uid in self._uids:
            try:
                fd = self._lock(uid)
            except BlockingIOError:
                continue  # another run's
            try:
                kill_all(uid)  # what a runner that died may have left
            except (OSError, subprocess.SubprocessError, RunnerError) as exc:
                log.error("uid %d skipped: its processes could not be ended: %s", uid, exc)
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            return RunUid(uid, fd)
        raise PrepareFailed(
            f"every uid of BOB_SHELL_RUNNER_UIDS ({self._uids.start}-{self._uids.stop - 1}) "
            "is in use by a run on this host"
        )

    def sweep(self) -> list[int]:
        """Kills the processes of every uid of the pool that no run holds (left by a runner
        that died) and answers those uids."""
        swept = []
        for uid in sorted(_uids_running(self._uids)):
            try:
                held = self._lock(uid)
            except BlockingIOError:
                continue  # a run holds it
            try:
                kill_all(uid)
                swept.append(uid)
            except (OSError, subprocess.SubprocessError, RunnerError) as exc:
                log.error("could not end the processes of uid %d: %s", uid, exc)
            finally:
                os.close(held)
        return swept

    def _lock(self, uid: int) -> int:
        path = os.path.join(self._lock_dir, f"{uid}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self, held: RunUid) -> None:
        try:
            kill_all(held.uid)
        finally:
            os.close(held.lock_fd)


def kill_all(uid: int) -> None:
    """SIGKILL to every process of `uid`, sent as `uid` (see the module's docstring), then
    waits until none is left alive; RunnerError when some outlive KILL_WAIT_S."""
    if uid == 0:
        raise AssertionError("never kill(-1) as root")
    subprocess.run(
        as_uid(uid, KILL_ALL),
        env={},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # "no such process" when there was none
        check=False,
        timeout=KILL_WAIT_S,
    )
    deadline = time.monotonic() + KILL_WAIT_S
    while left := processes_of(uid):
        if time.monotonic() > deadline:
            raise RunnerError(f"processes {left} of uid {uid} outlived SIGKILL")
        time.sleep(0.02)


def processes_of(uid: int) -> list[int]:
    """Pids of the live processes (zombies are dead) whose real, effective or saved uid is
    `uid`."""
    return [pid for pid, uids in _live_processes() if uid in uids]


def _uids_running(among: range) -> set[int]:
    return {uid for _, uids in _live_processes() for uid in uids if uid in among}


def _live_processes() -> Iterator[tuple[int, set[int]]]:
    """(pid, {real, effective, saved uid}) of each process that is not a zombie."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue  # ended meanwhile
        if not fields.get("State", "").strip().startswith("Z"):
            yield int(entry.name), {int(u) for u in fields.get("Uid", "").split()[:3]}


_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def files_as(uid: int) -> Iterator[None]:
    """This thread opens and creates files as `uid` (and the group of that number) would:
    what it makes is the run's, what the run could not read it cannot either. setfsuid is
    per thread, and the runner has dropped its supplementary groups (ShellExecutor.start).
    Nests: the identity before is restored on the way out. Keep network and imports out
    of it (iterate_as): Python's own files are root's here."""
    # setfsuid answers the previous value, and changes nothing for an invalid uid (-1).
    before_uid, before_gid = _libc.setfsuid(-1), _libc.setfsgid(-1)
    _libc.setfsgid(uid)
    _libc.setfsuid(uid)
    try:
        if _libc.setfsuid(-1) != uid or _libc.setfsgid(-1) != uid:
            raise RunnerError(f"could not take the file identity of uid {uid}")
        yield
    finally:
        _libc.setfsuid(before_uid)
        _libc.setfsgid(before_gid)


_END = object()


def iterate_as(uid: int, items: Iterable[T]) -> Iterator[T]:
    """`items`, each produced with the file identity of `uid` (files_as) and handed on
    with the caller's: file reads as the run, network with the runner's own."""
    source = iter(items)
    while True:
        with files_as(uid):
            item = next(source, _END)
        if item is _END:
            return
        yield item  # type: ignore[misc]
