"""A copy of a run's log for the logger it was started with (Bob's logger plugin):
`PUT {logger}/bob_logs/{run_id}` with the lines, newline-terminated, in order, as the run
produces them.

The run's log in entities is the source of truth; the copy never slows or fails the run.
A run's lines are handed over only once entities has them (after their event is
confirmed), into a buffer of MAX_BUFFERED (about 4 MiB) that a task of the copy's own drains, one
PUT of at most MAX_PUT_CHARS at a time. While the logger is down or slow the buffer fills;
once full, further lines are dropped: one warning in the runner's log and one `[bob]` line
in the run's log say that the copy is incomplete, and once the copy can go on, a `[bob]`
line in the copy says how many lines are missing there. A PUT that fails is retried with
the same lines (a logger may get a batch twice if its answer was lost), a logger that
refuses a batch (4xx) loses that batch, and the logger's URL is looked up in entities
again after a failure, so a re-pointed logger is found. After the run's end, lines still
waiting have END_FLUSH_S to go out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import httpx

from bob_common import plugin_http
from bob_common.log_markers import system_line, system_text
from bob_common.plugin_policy import AddressPolicy
from bob_common.plugin_urls import log_url, without_credentials
from bob_common.run_states import TERMINAL, RunStatus
from runner_svc.errors import RunnerError
from runner_svc.reporting.logsink import Line
from runner_svc.reporting.reporter import Reporter
from runner_svc.reporting.runlog import run_logger

# Named as before the module moved into reporting/: log filters and tests look for it.
log = logging.getLogger("runner_svc.logger_copy")

# Memory the lines of one run waiting for its logger may take, roughly: a line counts as
# its characters and LINE_OVERHEAD (a str object and its slot in the buffer).
MAX_BUFFERED = 4 * 1024 * 1024
LINE_OVERHEAD = 64
# One PUT's body at most; the reference logger takes up to 16 MiB.
MAX_PUT_CHARS = 1024 * 1024
# A failed PUT or lookup is retried after RETRY_MIN_S, twice as long each time after that.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0
# After the run's end, how long the lines still waiting may take to go out.
END_FLUSH_S = 30.0
# A PUT unanswered for this long at the run's end counts as failing: the run's log says so.
SLOW_S = 5.0
# On the runner's shutdown, how long copies still going out may finish.
SHUTDOWN_GRACE_S = 5.0
TEXT = "text/plain; charset=utf-8"

Lookup = Callable[[str], Awaitable[str]]
# Starts a copy's shipping task; the owner keeps track of it.
Spawn = Callable[["LogCopy"], "asyncio.Task[None]"]


class LogCopy:
    """One run's copy. add() lines in the log's order, end() once at the run's end; a task
    of its own ships them, until they are all out or END_FLUSH_S after end()."""

    def __init__(
        self,
        *,
        run_id: str,
        logger: str,
        lookup: Lookup,
        http: httpx.AsyncClient,
        spawn: Spawn | None = None,
        max_buffered: int = MAX_BUFFERED,
        max_put_chars: int = MAX_PUT_CHARS,
        end_flush_s: float = END_FLUSH_S,
    ) -> None:
        self.run_id = run_id
        self.logger = logger
        self._lookup = lookup
        self._http = http
        self._spawn = spawn or (lambda copy: asyncio.create_task(copy.ship()))
        self._max_buffered = max_buffered
        self._max_put = max_put_chars
        self._end_flush_s = end_flush_s
        self._lines: collections.deque[str] = collections.deque()
        self._buffered = 0  # what the lines in _lines count for MAX_BUFFERED
        self._dropped = 0  # since the last line that made it into the buffer
        self._dropped_total = 0
        self._failing = ""  # why the last lookup or PUT failed; "" once one succeeds
        # The same, as the run's log may say it: no URL, address or connection details.
        self._failing_told = ""
        self._put_since: float | None = None  # loop time the PUT in flight started
        self._told = False  # the run's log says (or is about to say) the copy is incomplete
        self._to_tell = ""  # what the run's log is to say at the next add()
        self._warned = False  # the runner's log says so
        self._wake = asyncio.Event()
        self._ended = False
        self._deadline: asyncio.Timeout | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = run_logger(log, run_id)

    @property
    def waiting(self) -> int:
        """Lines not yet taken by the logger."""
        return len(self._lines)

    def add(self, texts: Sequence[str]) -> str:
        """Queues lines for the logger. Answers the `[bob]` line the run's log is to get
        when these are the first lines dropped, else ""."""
        if self._ended:
            return ""
        if self._task is None:
            self._task = self._spawn(self)
        first_drop = False
        for text in texts:
            if self._dropped and self._fits(_MARKER_ROOM + len(text)):
                self._push(
                    system_text(
                        f"{self._dropped} lines of this run's log are "
                        "missing here: the logger was down, slow or refused them"
                    )
                )
                self._dropped = 0
            if self._fits(len(text)):
                self._push(text)
                continue
            first_drop = first_drop or self._dropped_total == 0
            self._dropped += 1
            self._dropped_total += 1
        self._wake.set()
        if first_drop:
            self._warn(f"buffer full ({self._failing or 'the logger is slow'}); dropping lines")
            self._tell("is down or slow")
        said, self._to_tell = self._to_tell, ""
        return said

    def ending(self) -> str:
        """At the run's end, before its terminal status: the `[bob]` line the run's log
        is to get when lines may never reach the logger, else ""."""
        now = asyncio.get_running_loop().time()
        stuck = self._put_since is not None and now - self._put_since > SLOW_S
        if self._lines and (self._failing or stuck):
            self._tell(f"is unreachable ({self._failing_told or 'no answer'})")
        said, self._to_tell = self._to_tell, ""
        return said

    def end(self) -> None:
        """No more lines: what is buffered goes out within end_flush_s, or never."""
        if self._ended:
            return
        self._ended = True
        self._wake.set()
        if self._deadline is not None:
            self._deadline.reschedule(asyncio.get_running_loop().time() + self._end_flush_s)

    def _fits(self, chars: int) -> bool:
        return self._buffered + chars + LINE_OVERHEAD <= self._max_buffered

    def _push(self, text: str) -> None:
        self._lines.append(text)
        self._buffered += len(text) + LINE_OVERHEAD

    def _tell(self, what: str) -> None:
        """Has the run's log say, once, that the copy is incomplete."""
        if not self._told:
            self._told = True
            self._to_tell = (
                f"logger {self.logger} {what}: its copy of this log is "
                "incomplete (this log is complete)"
            )

    def _warn(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            self._log.warning("logger %s: copy of the log incomplete: %s", self.logger, why)

    # --- the shipping task -----------------------------------------------------------

    async def ship(self) -> None:
        """The shipping task: until every line is out, or end_flush_s after end()."""
        try:
            async with asyncio.timeout(None) as deadline:
                self._deadline = deadline
                if self._ended:  # end() came before this task began
                    deadline.reschedule(asyncio.get_running_loop().time() + self._end_flush_s)
                await self._drain()
        except TimeoutError:
            if self._lines:
                self._warn(
                    f"{len(self._lines)} lines not sent {self._end_flush_s:.0f} s "
                    f"after the run's end ({self._failing or 'no answer'})"
                )
        except Exception:  # noqa: BLE001 - a copy is never worth the runner
            self._log.exception("logger %s: copy of the log given up", self.logger)

    async def _drain(self) -> None:
        url = ""
        delay = RETRY_MIN_S
        while True:
            if not self._lines:
                if self._ended:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if not url:
                    url = log_url(await self._lookup(self.logger), self.run_id)
                await self._put(url, self._batch_size())
            except (RunnerError, _Retry) as exc:
                url = "" if isinstance(exc, RunnerError) or exc.relookup else url
                self._failing = str(exc)
                self._failing_told = exc.told if isinstance(exc, _Retry) else str(exc)
                self._log.debug("logger %s: %s; retrying in %.1f s", self.logger, exc, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_S)
                continue
            self._failing = self._failing_told = ""
            delay = RETRY_MIN_S

    def _batch_size(self) -> int:
        """How many of the first lines go in the next PUT."""
        n = chars = 0
        for text in self._lines:
            if n and chars + len(text) + 1 > self._max_put:
                break
            n += 1
            chars += len(text) + 1
        return n

    async def _put(self, url: str, n: int) -> None:
        body = "".join(f"{self._lines[i]}\n" for i in range(n)).encode()
        loop = asyncio.get_running_loop()
        self._put_since = loop.time()
        shown = without_credentials(url)
        try:
            response = await self._http.put(url, content=body, headers={"Content-Type": TEXT})
        except httpx.HTTPError as exc:
            raise _Retry(f"PUT {shown}: {_why(exc)}", "no connection", relookup=True) from exc
        finally:
            self._put_since = None
        if response.status_code >= 500 or response.status_code in (408, 429):
            status = response.status_code
            raise _Retry(f"PUT {shown}: {status}", f"answered {status}", relookup=False)
        if response.status_code >= 300:
            # A refusal that a retry would only repeat: those lines are lost to the copy.
            self._warn(f"PUT {shown} answered {response.status_code}; {n} lines dropped")
            self._dropped += n
            self._dropped_total += n
            self._tell(f"refused lines ({response.status_code})")
        for _ in range(n):
            self._buffered -= len(self._lines.popleft()) + LINE_OVERHEAD


# Room kept for the line that says how many lines are missing (and its overhead).
_MARKER_ROOM = 200


class _Retry(Exception):
    def __init__(self, text: str, told: str, *, relookup: bool) -> None:
        super().__init__(text)
        self.told = told  # for the run's log
        self.relookup = relookup


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__} {exc}".strip()


class CopyingReporter:
    """A run's reporter that also hands each log line, once published, to the run's
    LogCopy. Everything else is the wrapped reporter's."""

    def __init__(self, inner: Reporter, copy: LogCopy) -> None:
        self._inner = inner
        self._copy = copy
        self._muted = False

    async def status(self, status: RunStatus, reason: str = "", *, wait: bool = True) -> None:
        terminal = status in TERMINAL
        try:
            if terminal and (said := self._copy.ending()):
                await self._inner.say(said)
            await self._inner.status(status, reason, wait=wait)
        finally:
            if terminal:
                self._copy.end()

    async def step_finished(
        self, index: int, exit_code: int, duration_ms: int, *, wait: bool = True
    ) -> None:
        await self._inner.step_finished(index, exit_code, duration_ms, wait=wait)

    async def say(self, text: str, *, wait: bool = True) -> None:
        await self._copied([system_line(text)], self._inner.say(text, wait=wait))

    async def logs(self, lines: Sequence[Line]) -> None:
        await self._copied(lines, self._inner.logs(lines))

    async def _copied(self, lines: Sequence[Line], publishing: Awaitable[None]) -> None:
        try:
            await publishing
        except BaseException:
            # The run cannot report any more (or the runner stops): nothing more to copy.
            self._copy.end()
            raise
        if self._muted:
            return
        if said := self._copy.add([text for _, text in lines]):
            await self._inner.say(said)

    def mute(self) -> None:
        self._muted = True
        self._inner.mute()
        self._copy.end()


class LogCopies:
    """The copies of one runner's runs, and the HTTP client they share. The runner's
    plugin transfers are synchronous on worker threads (plugins/transfer.py); a copy is small
    PUTs from the event loop, hence a client of its own, made at the first copy."""

    def __init__(
        self, lookup: Lookup, *, timeout_s: float, policy: AddressPolicy | None = None
    ) -> None:
        self._lookup = lookup
        self._timeout_s = timeout_s
        self._policy = policy or AddressPolicy(allow_private=True)
        self._http: httpx.AsyncClient | None = None
        # The copies shipping now, by their task.
        self._shipping: dict[asyncio.Task[None], LogCopy] = {}

    def reporter(self, logger: str, run_id: str, inner: Reporter) -> Reporter:
        """`inner`, copying to `logger` when the run has one."""
        if not logger:
            return inner
        if self._http is None:
            # Connects only where the policy allows (bob_common.plugin_http).
            timeout = httpx.Timeout(self._timeout_s)
            self._http = plugin_http.async_client(self._policy, timeout)
        copy = LogCopy(
            run_id=run_id, logger=logger, lookup=self._lookup, http=self._http, spawn=self._spawn
        )
        return CopyingReporter(inner, copy)

    def _spawn(self, copy: LogCopy) -> asyncio.Task[None]:
        task = asyncio.create_task(copy.ship(), name=f"log copy of {copy.run_id}")
        self._shipping[task] = copy
        task.add_done_callback(lambda t: self._shipping.pop(t, None))
        return task

    async def close(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Lets the copies still going out finish for grace_s, then cancels them."""
        for copy in self._shipping.values():
            copy.end()
        if self._shipping:
            _, late = await asyncio.wait(set(self._shipping), timeout=grace_s)
            for task in late:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
