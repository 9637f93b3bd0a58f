"""Jobs a job queue dead-lettered: delivered again and again without being claimed (for
example while entities was unreachable for minutes). Their run would otherwise stay
PENDING forever, so entities queues the job again, or fails the run once that has
happened BOB_MAX_ATTEMPTS times, and says so on bob.errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bob_common import amqp, topology
from bob_common.backoff import until_done
from bob_common.broker_link import BrokerLink, QueueUnavailable
from bob_pb import messages_pb2
from entities_svc import leases
from entities_svc.db import DatabaseThread
from entities_svc.job_queue import JobQueue

log = logging.getLogger(__name__)

SERVICE = "entities"


def death_reason(message: AbstractIncomingMessage) -> str:
    """The broker's account of the dead-lettering, from the x-death header."""
    deaths = (message.headers or {}).get("x-death") or []
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], dict):
        return "dead-lettered"
    death = deaths[0]
    reason = death.get("reason", "dead-lettered")
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    if reason == "delivery_limit":
        return f"delivered {topology.DELIVERY_LIMIT} times without being claimed"
    return f"{reason} in {death.get('queue', 'its queue')}"


class DeadJobs:
    def __init__(
        self,
        db: DatabaseThread,
        link: BrokerLink,
        jobs: JobQueue,
        max_attempts: int,
        job_due: Callable[[], None],
    ) -> None:
        self._db = db
        # Entities' link to the broker: the dead jobs are taken on its publishing channel.
        self._link = link
        self._jobs = jobs
        self._max_attempts = max_attempts
        # Called once a run has a job due again, so it is published without delay.
        self._job_due = job_due
        self._channel: AbstractChannel | None = None

    async def consume(self, declared: asyncio.Event) -> None:
        """Starts consuming once the topology is `declared` (the event consumer declares
        it), and returns: the channel is a robust one, so the consumer comes back after a
        reconnect by itself. Not before: consuming a quorum queue that another channel is
        declaring at that moment can make RabbitMQ close the connection (INTERNAL_ERROR)."""
        await declared.wait()
        await until_done(
            self._attach,
            what="the dead jobs' queue",
            errors=(QueueUnavailable, *amqp.BROKER_ERRORS),
            log=log,
        )

    async def _attach(self) -> None:
        self._channel = self._link.channel()
        queue = await topology.declare_dead_jobs(self._channel)
        await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        assert self._channel is not None
        try:
            job = amqp.decode(message, messages_pb2.Job)
        except amqp.MessageDecodeError as exc:
            # Poison from the start: the runner that rejected it has reported it already.
            # Kept raw on bob.dead, with the other poison messages.
            log.warning(
                "undecodable dead job moved to %s: %s", topology.DEAD_LETTER_QUEUE, exc.reason
            )
            await self._keep_raw(message)
            await message.ack()
            return
        why = death_reason(message)
        self._jobs.forget(job.run_id)
        try:
            moved = await self._db.call(
                leases.requeue_dead_job, job.run_id, job.attempt, why, self._max_attempts
            )
        except Exception:
            log.exception("run %s: dead job not handled; it stays queued", job.run_id)
            await message.nack(requeue=True)
            return
        if moved:
            await amqp.report_error(
                self._channel, SERVICE, f"run {job.run_id}: job of attempt {job.attempt} {why}"
            )
            self._job_due()
        await message.ack()

    async def _keep_raw(self, message: AbstractIncomingMessage) -> None:
        assert self._channel is not None
        dead = await self._channel.declare_exchange(
            topology.DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        await dead.publish(
            aio_pika.Message(
                message.body,
                headers=message.headers,
                type=message.type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key="",
        )
