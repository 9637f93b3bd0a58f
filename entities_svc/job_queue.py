"""Queues runs' jobs on bob.jobs, with broker confirms: the AMQP side of the outbox.

Entities publishes every job itself (a new run's, a retried attempt's, a dead-lettered
one's), so that a recorded run always gets its job: the confirmed ones are collected here
and marked queued in the database in batches by the sweep, which also publishes whatever
was never confirmed.
"""

from __future__ import annotations

from aio_pika.abc import AbstractExchange
from google.protobuf import json_format

from bob_common import amqp, topology
from bob_common.broker_link import BrokerLink
from bob_common.config import CommonSettings
from bob_pb import messages_pb2, pipeline_pb2
from entities_svc import broker
from entities_svc.run_queries import RunInfo


def pipeline_from_dict(definition: dict) -> pipeline_pb2.Pipeline:
    # ignore_unknown_fields: a definition stored by a newer version still loads.
    return json_format.ParseDict(definition, pipeline_pb2.Pipeline(), ignore_unknown_fields=True)


def job_of(info: RunInfo) -> messages_pb2.Job:
    """The job of the run's current attempt; `info` must carry the pipeline."""
    assert info.pipeline is not None, "load the run with its pipeline"
    return messages_pb2.Job(
        run_id=info.id,
        group=info.group,
        name=info.name,
        pipeline=pipeline_from_dict(info.pipeline),
        runner_type=info.runner_type,
        attempt=info.attempt,
        enqueued_at_ms=info.created_at_ms,
        first_line_no=info.first_line_no,
        logger=info.logger,
    )


class JobQueue:
    def __init__(self, settings: CommonSettings, link: BrokerLink | None = None) -> None:
        """Publishes on `link`, entities' one link to the broker, which its owner starts
        and closes; without one (a test, a tool), on a link of its own, which start() and
        close() open and close."""
        self._max_jobs = settings.queue_max_jobs
        self._own_link = link is None
        self._link = broker.link(settings) if link is None else link
        self._exchange: AbstractExchange | None = None
        self._declared_types: set[str] = set()
        # (run_id, attempt) of jobs confirmed since the last take_confirmed().
        self._confirmed: list[tuple[str, int]] = []

    async def start(self) -> None:
        if self._own_link:
            await self._link.start()

    @property
    def connected(self) -> bool:
        return self._link.connected

    async def publish(self, job: messages_pb2.Job) -> None:
        """Returns once the broker has confirmed the job; QueueFull when the job queue is
        at its bound, QueueUnavailable when the broker cannot be reached in time."""

        async def publish() -> None:
            channel = self._link.channel()
            if job.runner_type not in self._declared_types or self._exchange is None:
                # A queue for every type a job is published for, so no job is unroutable.
                self._exchange, _ = await topology.declare_jobs(
                    channel, job.runner_type, self._max_jobs
                )
                self._declared_types.add(job.runner_type)
            await self._exchange.publish(
                amqp.encode(job, headers={"run_id": job.run_id}),
                routing_key=job.runner_type,
                mandatory=True,
            )

        await self._link.bounded(publish)
        self._confirmed.append((job.run_id, job.attempt))

    def forget(self, run_id: str) -> None:
        """Drops the run's confirms not yet marked: its job is owed again (dead-lettered),
        and a late mark of the earlier publish must not hide that."""
        self._confirmed = [c for c in self._confirmed if c[0] != run_id]

    def take_confirmed(self) -> list[tuple[str, int]]:
        taken, self._confirmed = self._confirmed, []
        return taken

    async def close(self) -> None:
        if self._own_link:
            await self._link.close()
