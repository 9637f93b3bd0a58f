"""Broadcasts the controls entities owes runners (outbox.py) on the bob.control fanout,
with broker confirms: entities is the only sender of commands, jobs and controls alike.

A stop or pause rpc records the control and asks for it to be sent soon; the rpc answers
without waiting for the broker, since the runner learns the command from its next lease
renewal anyway. What the broker did not confirm (it was away, or slow) stays owed, and
the sweep sends it again until it is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aio_pika.abc import AbstractExchange

from bob_common import amqp, topology
from bob_common.broker_link import BrokerLink, QueueFull, QueueUnavailable
from bob_common.run_states import Order
from bob_pb import messages_pb2
from entities_svc import outbox
from entities_svc.db import DatabaseThread

log = logging.getLogger(__name__)

# The command that carries each wish of Run.desired to the runner.
ACTIONS: dict[Order, int] = {
    Order.STOP: messages_pb2.STOP,
    Order.PAUSE: messages_pb2.PAUSE,
    Order.RUN: messages_pb2.RESUME,
}
# Controls sent per pass at most; the rest wait for the next one.
SEND_BATCH = 500


class ControlSender:
    def __init__(self, db: DatabaseThread, link: BrokerLink) -> None:
        self._db = db
        # The link entities publishes its jobs on: one connection for everything it sends.
        self._link = link
        self._exchange: AbstractExchange | None = None
        # One pass at a time, so the sweep and an rpc's pass do not send the same twice.
        self._lock = asyncio.Lock()
        self._due = asyncio.Event()
        self._sending: asyncio.Task[None] | None = None

    def send_soon(self) -> None:
        """A control was recorded as owed: sends it in the background, now."""
        self._due.set()
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send_while_due(), name="controls")

    async def _send_while_due(self) -> None:
        while self._due.is_set():
            self._due.clear()
            try:
                await self.send_owed()
            except Exception:  # noqa: BLE001 - still owed: the sweep sends it
                log.exception("could not send the controls owed")

    async def send_owed(self) -> int:
        """Broadcasts the controls owed, each confirmed by the broker, and marks them sent;
        answers how many were. Stops at the first the broker does not confirm."""
        async with self._lock:
            if not self._link.connected:
                return 0
            owed = await self._db.call(outbox.controls_due, SEND_BATCH)
            sent: list[tuple[str, Order]] = []
            for run_id, order in owed:
                control = messages_pb2.Control(run_id=run_id, action=ACTIONS[order])
                try:
                    await self._broadcast(control)
                except (QueueFull, QueueUnavailable) as exc:
                    log.warning("cannot broadcast controls now (%s); next sweep", exc)
                    break
                sent.append((run_id, order))
            if sent:
                await self._db.call(outbox.mark_controls_sent, sent)
            return len(sent)

    async def _broadcast(self, control: messages_pb2.Control) -> None:
        async def publish() -> None:
            channel = self._link.channel()
            if self._exchange is None:
                self._exchange = await topology.declare_control(channel)
            await self._exchange.publish(
                amqp.encode(control, headers={"run_id": control.run_id}), routing_key=""
            )

        await self._link.bounded(publish)
        log.info(
            "run %s: %s broadcast", control.run_id, messages_pb2.ControlAction.Name(control.action)
        )

    async def close(self) -> None:
        """Cancels a pass under way: what it did not send stays owed."""
        if self._sending is not None:
            self._sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sending
