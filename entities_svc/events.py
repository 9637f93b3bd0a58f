"""The consumer of run events: bob.entities.events -> claim_check.apply_signed, in batches.

Deliveries are applied in batches, one database transaction each, and acked only once
that transaction has committed: a crash before the commit redelivers the batch, and the
per-run sequence numbers make the redelivery harmless. Events not signed by their run's
claim are refused and acked (claim_check.py). An event that arrives before one it
follows (progress.py: early) is held here, unacked, and tried again with the next
deliveries until the gap is filled; held longer than HOLD_S, it is refused and
dead-lettered, so a run whose events went missing cannot block the consumer. A delivery
may carry several consecutive events of one run (bob_common/run_events.py): it is done
with once none of them is early, and held while one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import NamedTuple, TypeVar

import aio_pika.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)

from bob_common import amqp, backoff, claim_proof, run_events, topology
from bob_common.broker_link import BrokerLink
from bob_common.config import EVENT_MAX_BYTES, EVENTS_INFLIGHT_MAX_BYTES
from bob_common.run_states import RunStatus
from bob_pb import messages_pb2
from entities_svc import claim_check, progress
from entities_svc.db import DatabaseThread

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE = "entities"
# How long a batch waits for more deliveries once its first one has arrived.
LINGER_S = 0.005
# A batch also stops at this many bytes of message bodies: a batch of log events of 1,000
# lines each would otherwise hold hundreds of thousands of lines in memory at once.
BATCH_BYTES = 4 * 1024 * 1024
MAX_PREFETCH = 200
MAX_INT64 = 2**63 - 1
# How long an early event waits for the events before it; then it is refused. Longer than
# a publish retry (reporter.py) takes, shorter than a run's lease.
HOLD_S = 20.0
# While events are held, how often they are tried again without new deliveries (their run
# may have moved on to a new attempt, which makes them stale).
HOLD_RETRY_S = 1.0


class _Held(NamedTuple):
    message: AbstractIncomingMessage
    signed: list[claim_check.Signed]
    # When it was first held (time.monotonic()).
    since: float


def to_signed(message: AbstractIncomingMessage) -> list[claim_check.Signed]:
    """The events of a delivery, each with what proves who sent it (the MAC of the
    delivery's body); MessageDecodeError for anything that is not usable events."""
    mac = claim_proof.mac_of(message.headers)
    return [claim_check.Signed(event, message.body, mac) for event in to_domain(message)]


def to_domain(message: AbstractIncomingMessage) -> list[progress.RunEvent]:
    """Decodes a delivery; MessageDecodeError for anything that is not usable events."""
    return [_domain_event(event, message.body) for event in run_events.decode(message)]


def _domain_event(event: messages_pb2.RunEvent, raw: bytes) -> progress.RunEvent:
    kind = event.WhichOneof("body")
    if not event.run_id or event.seq == 0 or kind is None:
        raise amqp.MessageDecodeError("RunEvent without run_id, seq or body", raw)
    # uint64 on the wire, but the database stores signed 64-bit integers.
    if event.seq > MAX_INT64 or any(ln.line_no > MAX_INT64 for ln in event.logs.lines):
        raise amqp.MessageDecodeError("RunEvent seq or line_no out of range", raw)
    body: progress.StatusChange | progress.LogLines | progress.StepDone
    if kind == "status":
        try:
            status = RunStatus(event.status.status)
        except ValueError:
            raise amqp.MessageDecodeError(
                f"RunEvent with unknown status {event.status.status}", raw
            ) from None
        body = progress.StatusChange(status, event.status.reason)
    elif kind == "logs":
        body = progress.LogLines(
            tuple(progress.Line(ln.line_no, ln.text, ln.stream) for ln in event.logs.lines)
        )
    else:
        body = progress.StepDone(event.step.index, event.step.exit_code, event.step.duration_ms)
    return progress.RunEvent(
        run_id=event.run_id,
        attempt=event.attempt,
        seq=event.seq,
        runner_id=event.runner_id,
        at_ms=event.at_ms,
        body=body,
    )


def prefetch(batch_max: int, event_max_bytes: int, inflight_max_bytes: int) -> int:
    """The consumer's prefetch: a little more than a batch, so the next one is arriving
    while one commits; and bounded, since unacked deliveries sit in this process. AMQP has
    no prefetch by bytes, so it is at most the bytes allowed over the largest event a
    runner publishes (runners split log events at event_max_bytes). Worst case held at
    once: prefetch x event_max_bytes of bodies (128 x 1 MiB by default)."""
    wanted = batch_max + max(1, batch_max // 2)
    return max(1, min(wanted, MAX_PREFETCH, inflight_max_bytes // max(1, event_max_bytes)))


class EventConsumer:
    def __init__(
        self,
        link: BrokerLink,
        db: DatabaseThread,
        batch_max: int,
        *,
        event_max_bytes: int = EVENT_MAX_BYTES,
        inflight_max_bytes: int = EVENTS_INFLIGHT_MAX_BYTES,
    ) -> None:
        # Entities' link to the broker; the consumer opens a channel of its own on it.
        self._link = link
        self._db = db
        self._batch_max = max(1, batch_max)
        self.prefetch = prefetch(self._batch_max, event_max_bytes, inflight_max_bytes)
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()
        # After a delivery failed to apply: likely the database is down, so do not spin
        # on redeliveries.
        self.retry_pause_s = 1.0
        # Run events applied since start, for monitoring.
        self.events_applied = 0
        # Run events refused since start: not from the claim holder, or held too long.
        self.events_refused = 0
        # Early events, unacked, waiting for the events before them (at most max_held).
        self._held: list[_Held] = []
        # Held deliveries stay unacked and take prefetch: half of it at most, so the rest
        # always lets in the events that fill the gaps. One more is refused (dead-lettered),
        # not given back: a quorum queue would redeliver it at once, again and again.
        self.max_held = max(1, self.prefetch // 2)
        self.hold_s = HOLD_S

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop taking deliveries; the batch being applied still commits and is acked."""
        self._stopping.set()

    async def run(self) -> None:
        # The broker may start after us: the link connects in the background, and gRPC is
        # served meanwhile.
        connection = await self._unless_stopped(self._link.opened())
        if connection is None:
            return
        # The broker may drop the connection while the topology is declared (RabbitMQ
        # closes it with INTERNAL_ERROR when a quorum queue is used a moment before its
        # leader is up): the set-up is tried again on the restored connection.
        attached = await self._unless_stopped(
            backoff.until_done(
                lambda: self._attach(connection),
                what="the events queue",
                errors=amqp.CONNECTION_LOST,
                log=log,
                stop=self._stopping,
            )
        )
        if attached is None:
            return
        channel, queue, tag = attached
        try:
            self.connected.set()
            log.info("consuming %s, prefetch %d", queue.name, self.prefetch)
            while (batch := await self._next_batch()) is not None:
                if batch or self._held:
                    await self._handle(channel, batch)
            # Deliveries still in the inbox are never acked: closing the channel returns
            # them to the queue for the next consumer.
            await amqp.cancel_consuming(queue, tag)
        finally:
            await channel.close()
            log.info("event consumer stopped")

    async def _attach(
        self, connection: AbstractRobustConnection
    ) -> tuple[AbstractChannel, AbstractQueue, ConsumerTag]:
        """A channel of the consumer's own, the topology declared (entities owns it: all
        of it, first thing), and the events queue consumed on it. After the connection
        dropped, it waits until the robust connection is back."""
        await connection.ready()
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await topology.declare_shared(channel)
            tag = await queue.consume(self._on_message)
        except BaseException:
            with contextlib.suppress(*amqp.BROKER_ERRORS, RuntimeError):
                await channel.close()
            raise
        return channel, queue, tag

    async def _unless_stopped(self, waiting: Awaitable[T]) -> T | None:
        """What `waiting` gives, or None once stop() was called first."""
        getter = asyncio.ensure_future(waiting)
        stopper = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            return None
        return getter.result()

    async def _pause(self, seconds: float) -> None:
        """Sleeps, but no longer than until stop()."""
        await backoff.pause(self._stopping, seconds)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def _next_batch(self) -> list[AbstractIncomingMessage] | None:
        """Up to batch_max deliveries or BATCH_BYTES of them: the first to come, and what
        follows within LINGER_S. While events are held, empty after HOLD_RETRY_S without
        a delivery. None once stop() was called."""
        if self._stopping.is_set():
            return None
        if self._inbox.empty():
            getter = asyncio.ensure_future(self._inbox.get())
            stopper = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait(
                {getter, stopper},
                timeout=HOLD_RETRY_S if self._held else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            stopper.cancel()
            if not getter.done():
                getter.cancel()
                return None if self._stopping.is_set() else []
            batch = [getter.result()]
        else:
            batch = []
        lingered = False
        size = sum(len(m.body) for m in batch)
        while len(batch) < self._batch_max and size < BATCH_BYTES:
            if not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
                size += len(batch[-1].body)
            elif lingered:
                break
            else:
                await asyncio.sleep(LINGER_S)
                lingered = True
        return batch

    async def _handle(self, channel: AbstractChannel, batch: list[AbstractIncomingMessage]) -> None:
        # Held events go first: they are older than the new deliveries.
        held, self._held = self._held, []
        since = {id(h.message): h.since for h in held}
        decoded = [(h.message, h.signed) for h in held]
        for message in batch:
            try:
                decoded.append((message, to_signed(message)))
            except amqp.MessageDecodeError as exc:
                await _settle(amqp.dead_letter(channel, SERVICE, message, exc.reason))
        if not decoded:
            return
        try:
            outcome = await self._db.call(
                claim_check.apply_signed, [s for _, signed in decoded for s in signed]
            )
        except Exception as exc:  # noqa: BLE001 - the consumer must outlive any one batch
            log.exception("applying a batch of %d deliveries failed", len(decoded))
            if len(decoded) == 1:
                await self._give_back(channel, *decoded[0], exc)
            else:
                await self._apply_one_by_one(channel, decoded, since)
            await self._pause(self.retry_pause_s)
            return
        log.debug("applied a batch of %d deliveries: %s", len(decoded), outcome)
        done = await self._count_and_hold(channel, decoded, outcome, since)
        await _ack_all(done, multiple=not self._held)

    async def _apply_one_by_one(
        self,
        channel: AbstractChannel,
        decoded: list[tuple[AbstractIncomingMessage, list[claim_check.Signed]]],
        since: dict[int, float],
    ) -> None:
        """Isolates a poison event, so that it alone is requeued (and, after the broker's
        delivery limit, dead-lettered) instead of the whole batch with it."""
        for message, signed in decoded:
            try:
                outcome = await self._db.call(claim_check.apply_signed, signed)
            except Exception as exc:  # noqa: BLE001 - see above
                await self._give_back(channel, message, signed, exc)
            else:
                for done in await self._count_and_hold(
                    channel, [(message, signed)], outcome, since
                ):
                    await _settle(done.ack())

    async def _count_and_hold(
        self,
        channel: AbstractChannel,
        decoded: list[tuple[AbstractIncomingMessage, list[claim_check.Signed]]],
        outcome: progress.Outcome,
        since: dict[int, float],
    ) -> list[AbstractIncomingMessage]:
        """Counts what a committed batch did and holds its early events; answers the
        deliveries that are done with, to be acked."""
        self.events_applied += outcome.applied
        self.events_refused += outcome.refused
        early = set(outcome.early)
        done = []
        now = time.monotonic()
        for message, signed in decoded:
            held = [s.event for s in signed if (s.event.run_id, s.event.seq) in early]
            if not held:
                done.append(message)
                continue
            event = held[0]
            first = since.get(id(message), now)
            if now - first >= self.hold_s:
                self.events_refused += len(held)
                why = (
                    f"run {event.run_id}: event seq {event.seq} refused, out of sequence: the "
                    f"events before it did not arrive within {self.hold_s:g} s"
                )
                await _settle(amqp.dead_letter(channel, SERVICE, message, why))
            elif len(self._held) >= self.max_held:
                self.events_refused += len(held)
                why = (
                    f"run {event.run_id}: event seq {event.seq} refused, out of sequence: "
                    f"{len(self._held)} events are held already"
                )
                await _settle(amqp.dead_letter(channel, SERVICE, message, why))
            else:
                self._held.append(_Held(message, signed, first))
        return done

    async def _give_back(
        self,
        channel: AbstractChannel,
        message: AbstractIncomingMessage,
        signed: list[claim_check.Signed],
        exc: Exception,
    ) -> None:
        """Requeues a delivery that failed to apply. The broker dead-letters it once it
        has failed DELIVERY_LIMIT times; bob.errors hears about it then, not before."""
        event = signed[0].event
        deliveries = _deliveries(message)
        what = f"run {event.run_id}: event seq {event.seq}"
        log.error("%s not applied (redelivered %d times): %r", what, deliveries, exc)
        if deliveries >= topology.DELIVERY_LIMIT:
            await amqp.report_error(
                channel,
                SERVICE,
                f"{what} dead-lettered after {deliveries + 1} failed deliveries: {exc!r}",
            )
        await _settle(message.nack(requeue=True))


async def _ack_all(messages: list[AbstractIncomingMessage], *, multiple: bool = True) -> None:
    """Acks the deliveries of a committed batch: with one ack of the last of them
    (`multiple`, which acks every delivery up to it on its channel) when they are all of
    one channel, as they are but after a reconnect, and no delivery is held. Every
    delivery before them on that channel was settled before they were taken: deliveries
    are taken in order, each batch is settled before the next, and those that failed to
    decode were rejected above."""
    if multiple and len(messages) > 1 and _one_channel(messages):
        last = max(messages, key=lambda m: m.delivery_tag or 0)
        await _settle(last.ack(multiple=True))
        return
    for message in messages:
        await _settle(message.ack())


def _one_channel(messages: list[AbstractIncomingMessage]) -> bool:
    """True when every delivery has a tag on the same open channel."""
    try:
        channel = messages[0].channel
        return all(m.channel is channel and m.delivery_tag is not None for m in messages)
    except RuntimeError:  # a closed channel (ChannelInvalidStateError)
        return False


def _deliveries(message: AbstractIncomingMessage) -> int:
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


async def _settle(settling: object) -> None:
    """Awaits an ack, nack or reject. After a reconnect the delivery belongs to a closed
    channel and cannot be settled; the broker redelivers it and the seq check skips it."""
    try:
        await settling  # type: ignore[misc]
    except (aio_pika.exceptions.AMQPError, RuntimeError) as exc:
        log.warning("could not settle a delivery (%r); it will be redelivered", exc)
