"""Publishes the events of one run attempt to bob.events.

Entities applies a run's events exactly once and in order by `seq`, so numbering and
publishing happen under one lock: seq starts at 1 with no gaps, log lines are numbered on
from the job's first_line_no (a retried attempt continues the run's log), and the wire
order is the numbering order even when the run and a control command report at once.
A counter only moves once its event is confirmed by the broker, so a failed publish is
retried with the same number (entities ignores a duplicate). Once muted (the run is not
this runner's any more), nothing more is published. Every event carries the MAC of its
body under the secret of the run's claim (bob_common/claim_proof.py), given once claimed:
entities applies no other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from aio_pika.abc import AbstractExchange

from bob_common import claim_proof
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


class Reporter(Protocol):
    """What a run reports through: a RunReporter, or logger_copy's reporter around one."""

    async def status(self, status: RunStatus, reason: str = "") -> None: ...
    async def step_finished(self, index: int, exit_code: int, duration_ms: int) -> None: ...
    async def say(self, text: str) -> None: ...
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

    async def status(self, status: RunStatus, reason: str = "") -> None:
        reason = logcaps.cap_line(reason, self._max_line_bytes)
        body = messages_pb2.StatusChanged(status=status, reason=reason)
        async with self._lock:
            await self._send("status", status=body)

    async def step_finished(self, index: int, exit_code: int, duration_ms: int) -> None:
        body = messages_pb2.StepFinished(index=index, exit_code=exit_code, duration_ms=duration_ms)
        async with self._lock:
            await self._send("step", step=body)

    async def say(self, text: str) -> None:
        """One line from Bob itself in the run's log."""
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
            for chunk in logcaps.event_chunks(lines, self._max_event_bytes):
                batch = messages_pb2.LogBatch()
                for line_no, (stream, text) in enumerate(chunk, start=self._line_no):
                    batch.lines.add(line_no=line_no, text=text, stream=stream)
                await self._send("logs", logs=batch)
                self._line_no += len(chunk)

    async def _send(self, kind: str, **body: object) -> None:
        """Publishes the next event and waits for its confirm; the caller holds the lock."""
        if self._muted.is_set():
            return
        event = messages_pb2.RunEvent(
            run_id=self._run_id,
            attempt=self._attempt,
            seq=self._seq + 1,
            runner_id=self._runner_id,
            at_ms=int(time.time() * 1000),
            **body,  # type: ignore[arg-type]
        )
        message = encode(event, headers={"run_id": self._run_id})
        if self._secret:
            message.headers[claim_proof.HEADER] = claim_proof.mac(self._secret, message.body)
        key = run_event_key(self._run_id, kind)
        try:
            await until_done(
                lambda: self._exchange.publish(
                    message, routing_key=key, mandatory=False, timeout=CONFIRM_TIMEOUT_S
                ),
                what=f"the broker with event {event.seq} ({kind})",
                errors=PUBLISH_ERRORS,
                log=self._log,
                stop=self._muted,
                first_s=RETRY_FIRST_S,
                most_s=RETRY_MOST_S,
                give_up_s=self._deadline_s,
            )
        except PUBLISH_ERRORS as exc:
            raise EventsUnavailable(
                f"could not publish event {event.seq} ({kind}): {exc!r}"
            ) from exc
        if self._muted.is_set():
            return
        self._seq = event.seq


class MaskingReporter:
    """A run's reporter that masks the run's secrets (masking.py) in what Bob writes
    itself: `[bob]` lines and reasons. A step's output comes masked already, by its
    LogSink, which finds a value split across chunks; it passes through unchanged."""

    def __init__(self, inner: Reporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor

    async def status(self, status: RunStatus, reason: str = "") -> None:
        await self._inner.status(status, self._redactor.mask(reason))

    async def step_finished(self, index: int, exit_code: int, duration_ms: int) -> None:
        await self._inner.step_finished(index, exit_code, duration_ms)

    async def say(self, text: str) -> None:
        await self._inner.say(self._redactor.mask(text))

    async def logs(self, lines: Sequence[Line]) -> None:
        await self._inner.logs(lines)

    def mute(self) -> None:
        self._inner.mute()
