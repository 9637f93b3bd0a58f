"""A service's one link to the broker, for services that answer requests (the API, entities).

It owns the connection and a channel with publisher confirms; whoever needs a channel of
its own (a consumer) opens it on that connection once the link is up (opened()). The
connection is made in the background and retried (backoff.until_done), so the service
answers while the broker is away; every exchange with the broker is bounded, and fails
fast with QueueUnavailable instead of hanging, or with QueueFull when the broker refused a
message.
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
from bob_common.backoff import until_done

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long one attempt to connect may take before it is given up and retried.
CONNECT_TIMEOUT_S = 10.0


class QueueUnavailable(Exception):
    """The broker cannot be reached or did not confirm in time; the caller answers 503."""


class QueueFull(Exception):
    """The broker refused the message (a bounded queue is full); the caller answers 503."""


class BrokerLink:
    def __init__(self, queue_url: str, connection_name: str, timeout_s: float) -> None:
        self._url = queue_url
        self._name = connection_name
        self.timeout_s = timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._connector: asyncio.Task[None] | None = None
        # Set once the connection and its publishing channel are open; it stays set, since
        # the robust connection restores itself and what was opened on it.
        self._opened = asyncio.Event()

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        await until_done(
            self._connect,
            what=f"the queue ({self._name})",
            errors=(TimeoutError, OSError, aiormq.exceptions.AMQPError),
            log=log,
        )
        self._opened.set()
        log.info("%s connected to the queue", self._name)

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                self._connection = await amqp.connect(self._url, self._name)
                self._channel = await self._connection.channel(publisher_confirms=True)
        except BaseException:
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    await self._connection.close()
                self._connection = None
            raise

    async def opened(self) -> AbstractRobustConnection:
        """The connection, once the link has first connected: a consumer opens its own
        channel on it (robust, so its consumer comes back after a reconnect)."""
        await self._opened.wait()
        assert self._connection is not None
        return self._connection

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
