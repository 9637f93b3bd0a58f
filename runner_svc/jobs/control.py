"""Listens on the control fanout: every runner hears every command, and only the runner
executing the run acts on it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from operator import methodcaller

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from bob_common.amqp import MessageDecodeError, cancel_consuming, dead_letter, decode
from bob_pb import messages_pb2
from runner_svc.reporting.runlog import run_logger
from runner_svc.run import Run

log = logging.getLogger(__name__)

SERVICE = "runner"
Command = Callable[[Run], Awaitable[None]]


class ControlListener:
    def __init__(self, lookup: Callable[[str], Run | None], channel: AbstractChannel) -> None:
        """`lookup`: ActiveRuns.run_of, the one question a command asks about the runs here."""
        self._lookup = lookup
        self._channel = channel
        self._consuming: tuple[AbstractQueue, str] | None = None
        self._commands: dict[int, Command] = {
            messages_pb2.STOP: methodcaller("stop"),
            messages_pb2.PAUSE: methodcaller("pause"),
            messages_pb2.RESUME: methodcaller("resume"),
        }

    async def start(self, queue: AbstractQueue) -> None:
        """Starts consuming; raises what the broker does."""
        self._consuming = queue, await queue.consume(self._on_message)

    async def serve(self, until: asyncio.Event) -> None:
        """Consumes until `until` is set: after the jobs have drained, since a STOP must
        still reach a run that is finishing during shutdown."""
        try:
            await until.wait()
        finally:
            if self._consuming is not None:
                await cancel_consuming(*self._consuming)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Commands are not retried: one for a run that is not here, or that fails, is done.
        async with message.process(requeue=False, ignore_processed=True):
            try:
                control = decode(message, messages_pb2.Control)
            except MessageDecodeError as exc:
                await dead_letter(self._channel, SERVICE, message, exc.reason)
                return
            await self.dispatch(control)

    async def dispatch(self, control: messages_pb2.Control) -> None:
        rlog = run_logger(log, control.run_id)
        command = self._commands.get(control.action)
        if command is None:
            rlog.warning("ignoring unknown control action %d", control.action)
            return
        run = self._lookup(control.run_id)
        if run is None:
            rlog.debug("%s is for another runner", messages_pb2.ControlAction.Name(control.action))
            return
        rlog.info("control: %s", messages_pb2.ControlAction.Name(control.action))
        await command(run)
