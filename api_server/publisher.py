"""Reads what the operators look at on the queue: the error queue, the depth of the job
queues. The API publishes nothing: entities sends every command (jobs, stop, pause and
resume), from its outbox.
"""

from __future__ import annotations

import socket

import aio_pika

from bob_common import topology
from bob_common.broker_link import BrokerLink, QueueUnavailable
from bob_common.config import CommonSettings


class Publisher:
    def __init__(self, settings: CommonSettings) -> None:
        self._link = BrokerLink(
            settings.queue_url,
            f"api-{socket.gethostname()}",
            settings.grpc_timeout_s,
        )

    async def start(self) -> None:
        await self._link.start()

    @property
    def connected(self) -> bool:
        return self._link.connected

    async def pop_error(self) -> str | None:
        """The oldest message on bob.errors, removed from it; None when there is none."""

        async def pop() -> str | None:
            # Passive, on a channel of its own: the API's broker user may read bob.errors
            # but declare nothing (entities does), and a missing queue closes the channel.
            channel = await self._link.connection.channel(publisher_confirms=False)
            try:
                queue = await channel.declare_queue(topology.ERRORS_QUEUE, passive=True)
                message = await queue.get(no_ack=True, fail=False)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return None
            finally:
                if not channel.is_closed:
                    await channel.close()
            return message.body.decode("utf-8", "replace") if message else None

        return await self._link.bounded(pop)

    async def queued_jobs(self, runner_types: set[str]) -> dict[str, int]:
        """Jobs waiting in the queue of each runner type that has one."""
        names = {topology.job_queue_name(t): t for t in runner_types}
        depths = await self.queue_depths(set(names))
        return {names[queue]: depth for queue, depth in depths.items()}

    async def queue_depths(self, queues: set[str]) -> dict[str, int]:
        """Messages ready in each of these queues that exists."""

        async def count() -> dict[str, int]:
            connection = self._link.connection
            depths: dict[str, int] = {}
            for name in sorted(queues):
                # A passive declare of a missing queue closes its channel: one channel each.
                channel = await connection.channel(publisher_confirms=False)
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    depths[name] = queue.declaration_result.message_count or 0
                except aio_pika.exceptions.ChannelClosed:
                    continue
                finally:
                    if not channel.is_closed:
                        await channel.close()
            return depths

        return await self._link.bounded(count)

    async def close(self) -> None:
        await self._link.close()


__all__ = ["Publisher", "QueueUnavailable"]
