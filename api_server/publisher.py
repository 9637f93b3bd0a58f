"""Publishes jobs and control commands to the queue, with broker confirms.

The connection is made in the background and retried, so the API serves reads while the
broker is away; a publish then fails fast with QueueUnavailable instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from bob_common import amqp, topology
from bob_common.config import CommonSettings
from bob_pb import messages_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")


class QueueUnavailable(Exception):
    """The broker cannot be reached or did not confirm in time; the caller answers 503."""


class QueueFull(Exception):
    """The broker refused the job (the bounded job queue is full); the caller answers 503."""


class Publisher:
    def __init__(self, settings: CommonSettings) -> None:
        self._settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._jobs: AbstractExchange | None = None
        self._control: AbstractExchange | None = None
        self._declared_types: set[str] = set()
        self._connector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                self._connection = await amqp.connect(
                    self._settings.queue_url, f"api-{socket.gethostname()}"
                )
                self._channel = await self._connection.channel(publisher_confirms=True)
                self._control = await topology.declare_control(self._channel)
                log.info("connected to the queue")
                return
            except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
                log.warning("queue not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    def _require_channel(self) -> AbstractChannel:
        if not self.connected or self._channel is None:
            raise QueueUnavailable("Queue is unavailable")
        return self._channel

    async def _jobs_for(self, runner_type: str) -> AbstractExchange:
        channel = self._require_channel()
        if runner_type not in self._declared_types or self._jobs is None:
            self._jobs, _ = await topology.declare_jobs(
                channel, runner_type, self._settings.queue_max_jobs
            )
            self._declared_types.add(runner_type)
        return self._jobs

    async def publish_job(self, job: messages_pb2.Job) -> None:
        """Returns once the broker has confirmed the job (it is then durable)."""

        async def publish() -> None:
            exchange = await self._jobs_for(job.runner_type)
            await exchange.publish(
                amqp.encode(job, headers={"run_id": job.run_id}),
                routing_key=job.runner_type,
                mandatory=True,
            )

        await self._bounded(publish)

    async def publish_control(self, control: messages_pb2.Control) -> None:
        async def publish() -> None:
            self._require_channel()
            assert self._control is not None
            await self._control.publish(
                amqp.encode(control, headers={"run_id": control.run_id}), routing_key=""
            )

        await self._bounded(publish)

    async def pop_error(self) -> str | None:
        """The oldest message on bob.errors, removed from it; None when there is none."""

        async def pop() -> str | None:
            channel = self._require_channel()
            queue = await channel.declare_queue(topology.ERRORS_QUEUE, durable=True)
            message = await queue.get(no_ack=True, fail=False)
            return message.body.decode("utf-8", "replace") if message else None

        return await self._bounded(pop)

    async def queued_jobs(self, runner_types: set[str]) -> dict[str, int]:
        """Jobs waiting in the queue of each runner type that has one."""

        async def count() -> dict[str, int]:
            if not self.connected or self._connection is None:
                raise QueueUnavailable("Queue is unavailable")
            depths: dict[str, int] = {}
            for runner_type in sorted(runner_types):
                # A passive declare of a missing queue closes its channel: one channel each.
                channel = await self._connection.channel(publisher_confirms=False)
                try:
                    queue = await channel.declare_queue(
                        topology.job_queue_name(runner_type), passive=True
                    )
                    depths[runner_type] = queue.declaration_result.message_count or 0
                except aio_pika.exceptions.ChannelClosed:
                    continue
                finally:
                    if not channel.is_closed:
                        await channel.close()
            return depths

        return await self._bounded(count)

    async def _bounded(self, work: Callable[[], Awaitable[T]]) -> T:
        """Runs one broker exchange within the deadline; a nack means the queue is full."""
        try:
            async with asyncio.timeout(self._settings.grpc_timeout_s):
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
