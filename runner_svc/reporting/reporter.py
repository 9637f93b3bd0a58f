"""Publishes the events of one run attempt to bob.events.

Entities applies a run's events exactly once and in order by `seq`, so numbering and
publishing happen under one lock: seq starts at 1 with no gaps, log lines are numbered on
from the job's first_line_no (a retried attempt continues the run's log), and the wire
order is the numbering order even when the run and a control command report at once.
A counter only moves once its event is confirmed by the broker, so a failed publish is
retried with the same number (entities ignores a duplicate). Once muted (the run is not
this runner's any more), nothing more is published. Every message carries the MAC of its
body under the secret of the run's claim (bob_common/claim_proof.py), given once claimed:
entities applies no other.

A call returns once its event is confirmed, but one made with wait=False: that event is
numbered and kept, and goes in one message with the events made after it, at the next
call that waits or after LINGER_S at most (bob_common/run_events.py). A run says several
things at once (INITIALIZED, RUNNING and a step's first line; a step's end, the run's last
line and its terminal status): each message is a publish, a confirm, a delivery, an apply
and an ack, so one instead of three is CPU saved in the runner, the broker and entities.
The linger is long enough for a short step to end within it (a trivial last step takes
~0.2-0.4 s, most of it the container's exit): a one-step run then says everything in one
message, and a longer step's first line and statuses are half a second late at most.
If pending events cannot be published alone, the next call raises why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from aio_pika import Message
from aio_pika.abc import AbstractExchange

from bob_common import claim_proof, run_events
from bob_common.amqp import BROKER_ERRORS, encode
from bob_common.backoff import until_done
from bob_common.config import EVENT_MAX_BYTES, LOG_LINE_MAX_BYTES
from bob_common.log_markers import system_line
from bob_common.run_states import RunStatus
from bob_common.topology import run_event_key
from bob_pb import messages_pb2
from runner_svc.errors import EventsUnavailable
from runner_svc.reporting import logcaps
from runner_svc.reporting.logsink import Line
from runner_svc.reporting.masking import Redactor
from runner_svc.reporting.runlog import run_logger

log = logging.getLogger(__name__)

# One publish waits this long for the broker's confirm before it is retried.
CONFIRM_TIMEOUT_S = 10.0
# What a publish raises while the broker is unreachable.
PUBLISH_ERRORS = BROKER_ERRORS
# A failed publish is retried after RETRY_FIRST_S, then twice as long each time.
RETRY_FIRST_S = 0.2
RETRY_MOST_S = 5.0
# How long an event made with wait=False may wait for the next one to go with it.
LINGER_S = 0.5


class Reporter(Protocol):
    """What a run reports through: a RunReporter, or logger_copy's reporter around one."""

    async def status(self, status: RunStatus, reason: str = "", *, wait: bool = True) -> None:
        """wait=False: queued, to go with the next event (or soon), not confirmed yet."""

    async def step_finished(
        self, index: int, exit_code: int, duration_ms: int, *, wait: bool = True
    ) -> None: ...
    async def say(self, text: str, *, wait: bool = True) -> None: ...
    async def logs(self, lines: Sequence[Line]) -> None: ...
    def mute(self) -> None: ...


class RunReporter:
    def __init__(
        self,
        exchange: AbstractExchange,
        *,
        run_id: str,
        attempt: int,
        runner_id: str,
        first_line_no: int = 0,
        deadline_s: float = 60.0,
        max_event_bytes: int = EVENT_MAX_BYTES,
        max_line_bytes: int = LOG_LINE_MAX_BYTES,
    ) -> None:
        self._exchange = exchange
        self._run_id = run_id
        self._attempt = attempt
        self._runner_id = runner_id
        self._deadline_s = deadline_s
        self._max_event_bytes = max_event_bytes
        self._max_line_bytes = max_line_bytes
        self._lock = asyncio.Lock()
        self._seq = 0  # of the last event published
        self._line_no = first_line_no  # of the next log line
        # Events made with wait=False, numbered, not yet published (guarded by _lock once
        # a publish has begun): they go with the next event, or after LINGER_S.
        self._pending: list[messages_pb2.RunEvent] = []
        self._pending_lines = 0
        self._linger: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        # Why the last publish of pending events alone failed: raised by the next call.
        self._failure: EventsUnavailable | None = None
        self._muted = asyncio.Event()
        self._log = run_logger(log, run_id)
        # The claim's secret; none before the claim (nothing is reported then).
        self._secret = b""

    def sign_with(self, secret: bytes) -> None:
        """Signs every event from now on with the claim's secret."""
        self._secret = secret

    def mute(self) -> None:
        """Drops every event from now on, including one being retried."""
        self._muted.set()
        self._pending.clear()
        self._pending_lines = 0
        if self._linger is not None:
            self._linger.cancel()

    async def status(self, status: RunStatus, reason: str = "", *, wait: bool = True) -> None:
        reason = logcaps.cap_line(reason, self._max_line_bytes)
        body = messages_pb2.StatusChanged(status=status, reason=reason)
        await self._report(self._event(status=body), wait)

    async def step_finished(
        self, index: int, exit_code: int, duration_ms: int, *, wait: bool = True
    ) -> None:
        body = messages_pb2.StepFinished(index=index, exit_code=exit_code, duration_ms=duration_ms)
        await self._report(self._event(step=body), wait)

    async def say(self, text: str, *, wait: bool = True) -> None:
        """One line from Bob itself in the run's log."""
        if not wait:
            stream, line = system_line(text)
            batch = messages_pb2.LogBatch()
            batch.lines.add(
                line_no=self._next_line_no(),
                text=logcaps.cap_line(line, self._max_line_bytes),
                stream=stream,  # type: ignore[arg-type]
            )
            await self._report(self._event(logs=batch), wait=False, lines=1)
            return
        await self.logs([system_line(text)])

    async def logs(self, lines: Sequence[Line]) -> None:
        """LogBatch events with these lines, numbered after the previous ones: one, unless
        they would make an event larger than max_event_bytes (the broker refuses a message
        beyond its max_message_size), then as many as that takes. Lines longer than the
        line cap (only Bob's own can be: a step's are cut by its LogSink) are cut."""
        if not lines:
            return
        cap = self._max_line_bytes
        if max(len(text) for _, text in lines) * 4 > cap:  # else none can be too long
            lines = [(stream, logcaps.cap_line(text, cap)) for stream, text in lines]
        async with self._lock:
            self._raise_failure()
            for chunk in logcaps.event_chunks(lines, self._max_event_bytes):
                batch = messages_pb2.LogBatch()
                for line_no, (stream, text) in enumerate(chunk, start=self._next_line_no()):
                    batch.lines.add(line_no=line_no, text=text, stream=stream)
                event = self._event(logs=batch)
                if self._pending and not self._fits_with_pending(event):
                    await self._publish_pending()
                    event.seq = self._seq + 1
                await self._publish([*self._pending, event], lines=len(chunk))

    def _next_line_no(self) -> int:
        return self._line_no + self._pending_lines

    def _event(self, **body: object) -> messages_pb2.RunEvent:
        """The next event, numbered after the published and pending ones."""
        return messages_pb2.RunEvent(
            run_id=self._run_id,
            attempt=self._attempt,
            seq=self._seq + len(self._pending) + 1,
            runner_id=self._runner_id,
            at_ms=int(time.time() * 1000),
            **body,  # type: ignore[arg-type]
        )

    def _fits_with_pending(self, event: messages_pb2.RunEvent) -> bool:
        # Pending events are small (statuses, steps, Bob's own lines), a log event may not.
        size = event.ByteSize() + sum(e.ByteSize() for e in self._pending)
        return size + logcaps.EVENT_RESERVE <= self._max_event_bytes

    async def _report(self, event: messages_pb2.RunEvent, wait: bool, lines: int = 0) -> None:
        """Publishes the event with the pending ones and waits for the broker's confirm;
        with wait=False only queues it, to go with the next event or after LINGER_S."""
        if self._muted.is_set():
            return
        if not wait and not self._lock.locked():
            self._raise_failure()
            self._pending.append(event)
            self._pending_lines += lines
            if self._linger is None:
                self._linger = asyncio.get_running_loop().call_later(LINGER_S, self._flush_soon)
            return
        async with self._lock:
            self._raise_failure()
            # Numbered again: a publish may have been under way when it was made.
            event.seq = self._seq + len(self._pending) + 1
            for n, line in enumerate(event.logs.lines, start=self._next_line_no()):
                line.line_no = n
            await self._publish([*self._pending, event], lines=lines)

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _flush_soon(self) -> None:
        self._linger = None
        task = asyncio.create_task(self._flush_pending())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush_pending(self) -> None:
        async with self._lock:
            try:
                await self._publish_pending()
            except EventsUnavailable as exc:
                self._failure = exc

    async def _publish_pending(self) -> None:
        """Under the lock: publishes the pending events, if any."""
        if self._pending:
            await self._publish(list(self._pending))

    async def _publish(self, events: list[messages_pb2.RunEvent], lines: int = 0) -> None:
        """Publishes these events, the pending ones first, in one message and waits for its
        confirm; the caller holds the lock. `lines`: the log lines among them not pending.
        On failure the pending events are dropped, as a single event would be, and the
        next event takes the first number of them."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        pending_lines = self._pending_lines
        self._pending = []
        self._pending_lines = 0
        if self._muted.is_set():
            return
        if len(events) == 1:
            kind = run_events.kind(events[0])
            message = encode(events[0], headers={"run_id": self._run_id})
        else:
            kind = run_events.BATCH
            message = encode(run_events.batch(events), headers={"run_id": self._run_id})
        if self._secret:
            message.headers[claim_proof.HEADER] = claim_proof.mac(self._secret, message.body)
        key = run_event_key(self._run_id, kind)
        first, last = events[0].seq, events[-1].seq
        what = f"event {first}" if first == last else f"events {first}-{last}"
        try:
            await self._publish_message(message, key, f"{what} ({kind})")
        except PUBLISH_ERRORS as exc:
            raise EventsUnavailable(f"could not publish {what} ({kind}): {exc!r}") from exc
        if self._muted.is_set():
            return
        self._seq = last
        self._line_no += pending_lines + lines

    async def _publish_message(self, message: Message, key: str, what: str) -> None:
        await until_done(
            lambda: self._exchange.publish(
                message, routing_key=key, mandatory=False, timeout=CONFIRM_TIMEOUT_S
            ),
            what=f"the broker with {what}",
            errors=PUBLISH_ERRORS,
            log=self._log,
            stop=self._muted,
            first_s=RETRY_FIRST_S,
            most_s=RETRY_MOST_S,
            give_up_s=self._deadline_s,
        )


class MaskingReporter:
    """A run's reporter that masks the run's secrets (masking.py) in what Bob writes
    itself: `[bob]` lines and reasons. A step's output comes masked already, by its
    LogSink, which finds a value split across chunks; it passes through unchanged."""

    def __init__(self, inner: Reporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor

    async def status(self, status: RunStatus, reason: str = "", *, wait: bool = True) -> None:
        await self._inner.status(status, self._redactor.mask(reason), wait=wait)

    async def step_finished(
        self, index: int, exit_code: int, duration_ms: int, *, wait: bool = True
    ) -> None:
        await self._inner.step_finished(index, exit_code, duration_ms, wait=wait)

    async def say(self, text: str, *, wait: bool = True) -> None:
        await self._inner.say(self._redactor.mask(text), wait=wait)

    async def logs(self, lines: Sequence[Line]) -> None:
        await self._inner.logs(lines)

    def mute(self) -> None:
        self._inner.mute()
