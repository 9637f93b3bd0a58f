"""A step's output on its way from a blocking reader thread to the event loop.

The reader thread (the docker SDK streams blocking) splits each stream into lines and
hands them over in batches, one cross-thread call per batch, never per line. The
hand-over waits on a bounded asyncio queue: when the loop cannot publish as fast as a
step prints, the reader stops reading, the container's pipe fills and the step blocks.
That is the back-pressure that keeps a runner's memory flat whatever a step prints.
Secrets are masked in each stream before it is split (masking.py), so a value split
across chunks or lines is found whole and no line leaves unmasked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator

from bob_common.config import LOG_LINE_MAX_BYTES
from bob_pb import messages_pb2
from runner_svc.reporting.logcaps import LineCutter, LogBudget
from runner_svc.reporting.masking import Redactor, StreamMasker

# (stream, text): stream is a messages_pb2.LogStream value.
Line = tuple[int, str]
Batch = list[Line]

# The longest stored line by default, in UTF-8 bytes (BOB_LOG_LINE_MAX_BYTES).
MAX_LINE_BYTES = LOG_LINE_MAX_BYTES

# Batches waiting for the loop at most, per step.
MAX_PENDING_BATCHES = 4


class LineSplitter:
    """Splits one byte stream into lines: a line may span chunks, the last one may lack
    its newline. Lines are decoded as UTF-8 with replacement only once complete, so a
    character split across chunks survives. A line longer than max_line_bytes (measured
    after decoding) is cut into pieces (logcaps.LineCutter): a step printing megabytes
    without a newline must not hold them all in the runner, nor store them as one line."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._partial = b""
        self._cutter = LineCutter(max_line_bytes)
        self._max = max_line_bytes

    def feed(self, data: bytes) -> list[str]:
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()
        if max(map(len, parts), default=0) <= self._cutter.short:
            # The usual case, at C speed: no line of this chunk can be too long.
            lines = [part.decode("utf-8", "replace") for part in parts]
        else:
            lines = []
            for part in parts:
                lines.extend(self._cutter.pieces(part))
        while len(self._partial) > self._max:
            piece, self._partial = self._cutter.cut(self._partial)
            lines.append(piece)
        return lines

    def flush(self) -> list[str]:
        """The final line when it had no newline; call once the stream has ended."""
        tail, self._partial = self._partial, b""
        return list(self._cutter.pieces(tail)) if tail else []


class LogSink:
    """Carries one step's output to the loop in batches of at most `batch_lines` lines, or
    whatever accumulated within `flush_s`.

    Reader thread: write() each chunk, close() exactly once at the end, whatever happens.
    Or a reader on the event loop: await feed() and end() in their place.
    Event loop: iterate batches() until it ends; abort() if you stop iterating early.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        batch_lines: int,
        flush_s: float,
        max_pending: int = MAX_PENDING_BATCHES,
        redactor: Redactor | None = None,
        budget: LogBudget | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self._loop = loop
        self._batch_lines = batch_lines
        self._flush_s = flush_s
        # None marks the end of the output.
        self._queue: asyncio.Queue[Batch | None] = asyncio.Queue(max_pending)
        self._splitters = {
            messages_pb2.STDOUT: LineSplitter(max_line_bytes),
            messages_pb2.STDERR: LineSplitter(max_line_bytes),
        }
        # The run's log bytes left (logcaps.py), shared by its steps; None: no cap.
        self._budget = budget
        # One per stream, as each is its own sequence of bytes; none without secrets.
        self._maskers: dict[int, StreamMasker] = (
            {stream: redactor.stream() for stream in self._splitters} if redactor else {}
        )
        self._lock = threading.Lock()
        self._lines: Batch = []  # guarded by _lock
        self._handoff: concurrent.futures.Future[None] | None = None  # guarded by _lock
        self._aborted = False  # guarded by _lock
        self._ended = False  # the end marker is queued; event loop only
        # Batches taken by _enqueue that batches() has not taken from the queue yet; event
        # loop only. While any are in flight, lines still collecting are later than they.
        self._in_flight = 0
        # When the lines collecting now are due (the loop's clock; None: none collect),
        # and the wait of batches() for the next batch, which ends then; event loop only.
        self._due: float | None = None
        self._waiting: asyncio.Timeout | None = None

    # --- reader thread -------------------------------------------------------------

    def write(self, stream: int, data: bytes) -> None:
        full, started = self._add(stream, data)
        if full:
            self._hand_off(end=False)
        elif started:
            try:
                self._loop.call_soon_threadsafe(self._collect_from_now)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass

    def close(self) -> None:
        self._add_tails()
        self._hand_off(end=True)

    # --- or a reader on the event loop itself --------------------------------------

    async def feed(self, stream: int, data: bytes) -> None:
        """write() for a reader on the loop: waits (instead of blocking) while the queue
        is full, which is the same back-pressure: the reader stops reading."""
        full, started = self._add(stream, data)
        if full:
            await self._hand_off_here(end=False)
        elif started:
            self._collect_from_now()

    async def end(self) -> None:
        """close() for a reader on the loop; exactly once, whatever happens."""
        self._add_tails()
        await self._hand_off_here(end=True)

    async def _hand_off_here(self, *, end: bool) -> None:
        with self._lock:
            if self._aborted:
                return
        await self._enqueue(end)

    # --- either reader -------------------------------------------------------------

    def _add(self, stream: int, data: bytes) -> tuple[bool, bool]:
        """Collects the lines `data` completes; (whether a batch is full, whether lines
        started to collect)."""
        if self._budget is not None and self._budget.exhausted:
            # Past the run's cap nothing is kept: the output is read (the step goes on)
            # and dropped, without masking or splitting it.
            return False, False
        if masker := self._maskers.get(stream):
            data = masker.feed(data)
        lines = self._splitters[stream].feed(data)
        if not lines:
            return False, False
        batch = [(stream, text) for text in lines]
        if self._budget is not None:
            batch = self._budget.take(batch)
        with self._lock:
            if self._aborted:
                return False, False
            started = not self._lines and bool(batch)
            self._lines.extend(batch)
            return len(self._lines) >= self._batch_lines, started

    def _add_tails(self) -> None:
        """Collects what the streams hold back once they have ended."""
        tails: Batch = []
        for stream, splitter in self._splitters.items():
            # What a masker held back goes out now, masked where it completes a value.
            masker = self._maskers.get(stream)
            rest = splitter.feed(masker.flush()) if masker else []
            tails += [(stream, text) for text in (*rest, *splitter.flush())]
        if self._budget is not None and tails:
            tails = self._budget.take(tails)
        with self._lock:
            self._lines.extend(tails)

    def _hand_off(self, *, end: bool) -> None:
        with self._lock:
            if self._aborted:
                return
            try:
                handoff = asyncio.run_coroutine_threadsafe(self._enqueue(end), self._loop)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self._aborted = True
                return
            self._handoff = handoff
        try:
            # Blocks while the queue is full: this is the back-pressure.
            handoff.result()
        except concurrent.futures.CancelledError:
            pass

    # --- event loop ----------------------------------------------------------------

    def _collect_from_now(self) -> None:
        """Lines started to collect: the wait of batches() ends flush_s from now."""
        if self._due is None:
            self._due = self._loop.time() + self._flush_s
        if self._waiting is not None and self._waiting.when() is None:
            self._waiting.reschedule(self._due)

    def _collecting(self) -> bool:
        with self._lock:
            return bool(self._lines)

    async def _enqueue(self, end: bool) -> None:
        # Taking the lines and queueing them happen on the loop, in this order, so a batch
        # taken by batches() after an idle flush_s can never overtake an earlier one.
        taken = self._take(whole_only=not end)
        self._in_flight += len(taken)
        for batch in taken:
            await self._queue.put(batch)
        if end:
            self._ended = True
            await self._queue.put(None)

    def _take(self, *, whole_only: bool = False) -> list[Batch]:
        """The collected lines in batches of batch_lines; with whole_only, a last partial
        batch stays to be filled up."""
        n = self._batch_lines
        with self._lock:
            keep = len(self._lines) % n if whole_only else 0
            taken = self._lines[: len(self._lines) - keep]
            self._lines = self._lines[len(taken) :]
        return [taken[i : i + n] for i in range(0, len(taken), n)]

    async def batches(self) -> AsyncIterator[Batch]:
        """Yields batches in output order; ends once the reader thread has closed."""
        while True:
            # The wait ends flush_s after lines started to collect (or after the last
            # batch, if they did before it); while none collect, it has no end, and the
            # writer sets one when they start: a step that prints nothing costs no wake-up
            # (it cost one every flush_s).
            if not self._collecting():
                self._due = None
            elif self._due is None:
                self._due = self._loop.time() + self._flush_s
            try:
                async with asyncio.timeout_at(self._due) as self._waiting:
                    batch = await self._queue.get()
            except TimeoutError:
                self._due = None
                # Nothing handed over for flush_s: send what the thread has collected so
                # far, so a slowly printing step is still seen live. Not while a hand-over
                # is in flight, though: the timeout may strike just as a batch is queued
                # (the batch stays queued), and the lines collected since come after it.
                if not self._in_flight:
                    for batch in self._take():
                        yield batch
                continue
            finally:
                self._waiting = None
            if batch is None:
                return
            self._in_flight -= 1
            self._due = None
            yield batch

    def ensure_ended(self) -> None:
        """Ends batches() if the writer finished without closing, e.g. because it failed
        before its thread even started. Call once the writer is done."""
        if not self._ended:
            self._ended = True
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:  # only after abort(), when nobody iterates any more
                pass

    def abort(self) -> None:
        """Stops the hand-over for good: a reader thread blocked on a full queue returns,
        and later output is dropped. For when the loop stops iterating early."""
        with self._lock:
            self._aborted = True
            if self._handoff is not None:
                self._handoff.cancel()
