"""One job slot per unit of capacity: a consumer on a channel of its own, present on the
job queue only while the slot is free.

A job is acked as soon as its claim has decided (the run is then owned in entities, not in
the queue), so that a build longer than the broker's consumer timeout is never redelivered
mid-run. An ack no longer marks the end of a run, so a prefetch of N on one consumer
would no longer bound the runs executing here. Instead each slot consumes with prefetch 1
and, on a delivery, cancels its consumer and waits for the broker's cancel-ok before
anything else: with that one delivery unacked, nothing more can come to it meanwhile. It
consumes again once its job is over. So a runner never holds more jobs than it has free
slots, and waiting jobs stay in the queue for any runner.

A slot that has just finished a job first asks for one more with a basic.get: when jobs are
waiting, that takes the next in one command on the quorum queue, where consuming again,
the delivery and the cancel are three (and as many round trips for the runner). Only when
none waits does it consume. Either way it holds one job at most.

Each slot's channel is robust: after a reconnection, aio-pika restores the consumers that
were not cancelled (those of the free slots), and only those. A delivery that reaches a
slot which is busy or closed anyway (a consumer restored in a race with its cancel, or on
its way at shutdown) is handed back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from bob_common.amqp import BROKER_ERRORS, cancel_consuming
from bob_common.backoff import until_done

log = logging.getLogger(__name__)

# Handles one job; returns when the slot may take another.
Take = Callable[[AbstractIncomingMessage], Awaitable[None]]
# Waits between attempts to consume while the broker is away.
CONSUME_RETRY_MAX_S = 5.0
# How long the broker may take to answer a basic.get before the slot consumes instead.
GET_TIMEOUT_S = 5.0


class JobSlot:
    def __init__(self, number: int, queue: AbstractQueue, take: Take) -> None:
        self._number = number
        self._queue = queue
        self._take = take
        self._tag: str | None = None  # of the consumer, while there is one
        self._busy = False
        self._closed = False
        # Paused while the runner's engine is away (pause()): not on the queue meanwhile.
        self._paused = False
        self._consuming: asyncio.Task[None] | None = None  # consuming again after a job
        # The job being taken, and deliveries being handed back: shutdown waits for them.
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Starts consuming; raises what the broker does."""
        self._tag = await self._queue.consume(self._on_delivery)

    async def close(self) -> None:
        """Takes no more jobs; the one being taken goes on."""
        self._closed = True
        if self._consuming is not None:
            # Maybe waiting for the broker. A consumer it made all the same hands back
            # whatever reaches it.
            self._consuming.cancel()
        if self._tag is not None:
            tag, self._tag = self._tag, None
            await cancel_consuming(self._queue, tag)

    async def pause(self) -> None:
        """Takes no more jobs until resume(); the one being taken goes on."""
        self._paused = True
        if self._consuming is not None:
            self._consuming.cancel()
            self._consuming = None
        if self._tag is not None:
            tag, self._tag = self._tag, None
            await cancel_consuming(self._queue, tag)

    async def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if not self._busy and not self._closed and self._tag is None:
            self._consuming = asyncio.create_task(self._consume())

    async def _take_or_consume(self) -> None:
        """After a job: the next one waiting, else a consumer that waits for one."""
        getting = asyncio.ensure_future(self._get())
        try:
            message = await asyncio.shield(getting)
        except asyncio.CancelledError:
            # Paused or closed meanwhile: a job the broker gives all the same goes back.
            getting.add_done_callback(self._hand_back_got)
            raise
        if message is None:
            await self._consume()
        elif self._closed or self._paused:  # closed or paused while it was on its way
            await self._hand_back(message)
        else:
            self._busy = True
            self._spawn(self._work(message))

    async def _get(self) -> AbstractIncomingMessage | None:
        try:
            return await self._queue.get(no_ack=False, fail=False, timeout=GET_TIMEOUT_S)
        except BROKER_ERRORS as exc:  # e.g. the channel being restored: consume instead
            log.debug("slot %d: no job taken with a get (%r)", self._number, exc)
            return None

    def _hand_back_got(self, getting: asyncio.Future[AbstractIncomingMessage | None]) -> None:
        if getting.cancelled() or getting.exception() is not None:
            return
        if (message := getting.result()) is not None:
            self._spawn(self._hand_back(message))

    async def _consume(self) -> None:
        # A robust channel that is being restored: try again once it may be back. Retried
        # until it succeeds or close() cancels this task.
        tag = await until_done(
            lambda: self._queue.consume(self._on_delivery),
            what=f"the job queue for slot {self._number}",
            errors=BROKER_ERRORS,
            log=log,
            most_s=CONSUME_RETRY_MAX_S,
        )
        assert tag is not None  # None only when a stop event is given
        if self._closed or self._paused:  # closed or paused while it was on its way
            await cancel_consuming(self._queue, tag)
        else:
            self._tag = tag

    async def _on_delivery(self, message: AbstractIncomingMessage) -> None:
        # No await before the slot is marked busy: the next delivery must see it.
        if self._busy or self._closed or self._paused:
            self._spawn(self._hand_back(message))
            return
        self._busy = True
        self._tag = None
        self._spawn(self._work(message))

    async def _work(self, message: AbstractIncomingMessage) -> None:
        try:
            if message.consumer_tag:  # none for a job taken with a get
                await cancel_consuming(self._queue, message.consumer_tag)
            await self._take(message)
        except Exception:
            log.exception("slot %d: taking a job failed", self._number)
            if not message.processed:
                # Unsettled, it would hold this channel's one prefetch for good.
                await self._hand_back(message)
        finally:
            self._busy = False
        if not self._closed and not self._paused:
            # Not one of `tasks`: a shutdown does not wait for a broker that is away.
            self._consuming = asyncio.create_task(self._take_or_consume())

    async def _hand_back(self, message: AbstractIncomingMessage) -> None:
        log.info("slot %d hands delivery %s back to the queue", self._number, message.delivery_tag)
        # Cancelled first, so the requeued job does not come straight back here.
        if message.consumer_tag:
            await cancel_consuming(self._queue, message.consumer_tag)
        try:
            await message.nack(requeue=True)
        except Exception as exc:  # noqa: BLE001 - the broker requeues it with the channel
            log.warning("could not hand delivery %s back: %r", message.delivery_tag, exc)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
