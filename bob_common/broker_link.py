"""A publishing link to the broker, for services that answer requests (the API, entities).

The connection is made in the background and retried, so the service answers while the
broker is away; every exchange with the broker is bounded, and fails fast with
QueueUnavailable instead of hanging, or with QueueFull when the broker refused a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from bob_common import amqp

log = logging.getLogger(__name__)
T = TypeVar("T")


class QueueUnavailable(Exception):
    """The broker cannot be reached or did not confirm in time; the caller answers 503."""


class QueueFull(Exception):
    """The broker refused the message (a bounded queue is full); the caller answers 503."""


class BrokerLink:
    def __init__(
        self,
        queue_url: str,
        connection_name: str,
        timeout_s: float,
        on_channel: Callable[[AbstractChannel], Awaitable[None]] | None = None,
    ) -> None:
        self._url = queue_url
        self._name = connection_name
        self.timeout_s = timeout_s
        # Declares what the service publishes to, once the channel is open.
        self._on_channel = on_channel
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._connector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                self._connection = await amqp.connect(self._url, self._name)
                self._channel = await self._connection.channel(publisher_confirms=True)
                if self._on_channel is not None:
                    await self._on_channel(self._channel)
                log.info("%s connected to the queue", self._name)
                return
            except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
                log.warning("queue not reachable (%s); retrying in %.1fs", exc, delay)
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
                    self._connection = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    @property
    def connection(self) -> AbstractRobustConnection:
        if not self.connected or self._connection is None:
            raise QueueUnavailable("Queue is unavailable")
        return self._connection

    def channel(self) -> AbstractChannel:
        if not self.connected or self._channel is None:
            raise QueueUnavailable("Queue is unavailable")
        return self._channel

    async def bounded(self, work: Callable[[], Awaitable[T]]) -> T:
        """Runs one exchange with the broker within the deadline; a nack means full."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await work()
        except aio_pika.exceptions.DeliveryError as exc:
            raise QueueFull(str(exc)) from exc
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
            raise QueueUnavailable(f"Queue did not answer in time: {exc!r}") from exc

    async def close(self) -> None:
        if self._connector:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._connection:
            await self._connection.close()
