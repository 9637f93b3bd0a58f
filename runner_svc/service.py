"""The runner process: connects, declares what it uses, consumes jobs and control
commands, and shuts down in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika.exceptions
import grpc
from aio_pika.abc import AbstractRobustConnection

from bob_common import amqp, topology
from bob_common.config import RunnerSettings
from runner_svc.claims import RunClaims
from runner_svc.consumer import JobConsumer
from runner_svc.control import ControlListener
from runner_svc.errors import ExecutorUnavailable
from runner_svc.executor import Executor
from runner_svc.heartbeat import Heartbeat
from runner_svc.plugins import PluginDirectory
from runner_svc.tuning import Tuning

log = logging.getLogger(__name__)
T = TypeVar("T")

# Start-up retries wait 0.5 s, then twice as long each time, at most this long.
RETRY_MAX_S = 30.0
_UNREACHABLE = (ExecutorUnavailable, aio_pika.exceptions.AMQPError, OSError)


class RunnerService:
    def __init__(
        self, settings: RunnerSettings, executor: Executor, tuning: Tuning | None = None
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._tuning = tuning or Tuning.from_settings(settings)
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        # Set once the queues are declared and bound; for tests and tools.
        self.ready = asyncio.Event()

    def request_shutdown(self, why: str = "shutdown requested") -> None:
        """First call: take no new jobs and let running ones drain. Second: don't wait."""
        if self._stop.is_set():
            log.warning("%s again: stopping running jobs now", why)
            self._hurry.set()
        else:
            log.info("%s: taking no new jobs, draining", why)
            self._stop.set()

    async def run(self) -> None:
        s = self._settings
        log.info("runner %s (type %s, capacity %d) starting", s.runner_id, s.runner_type,
                 s.capacity)
        if not await self._retry("the executor backend", self._start_executor):
            await self._executor.close()
            return
        connection = await self._retry(
            "RabbitMQ", lambda: amqp.connect(s.common.queue_url, f"runner-{s.runner_id}")
        )
        try:
            if connection is not None:
                async with grpc.aio.insecure_channel(s.common.entities_addr) as entities:
                    timeout_s = s.common.grpc_timeout_s
                    await self._serve(
                        connection,
                        RunClaims(entities, runner_id=s.runner_id, timeout_s=timeout_s),
                        PluginDirectory(entities, timeout_s=timeout_s),
                    )
        finally:
            await self._executor.close()
            # Connections close last: draining runs still publish their events.
            if connection is not None:
                await connection.close()
        log.info("runner %s stopped", s.runner_id)

    async def _start_executor(self) -> bool:
        await self._executor.start()
        return True

    async def _serve(
        self, connection: AbstractRobustConnection, claims: RunClaims, plugins: PluginDirectory
    ) -> None:
        s = self._settings
        jobs_channel = await connection.channel()
        # One unacked job per free slot: the broker never gives this runner more work than
        # it can run, and the rest waits in the queue for any runner.
        await jobs_channel.set_qos(prefetch_count=s.capacity)
        _, jobs = await topology.declare_jobs(jobs_channel, s.runner_type, s.common.queue_max_jobs)

        events_channel = await connection.channel()
        events = await topology.declare_events(events_channel)
        # Declared here too, so events published before entities first starts are kept.
        await topology.declare_entities_events(events_channel)

        control_channel = await connection.channel()
        control_queue = await topology.declare_control_queue(control_channel)

        consumer = JobConsumer(
            s,
            executor=self._executor,
            claims=claims,
            plugins=plugins,
            events=events,
            channel=jobs_channel,
            tuning=self._tuning,
        )
        control = ControlListener(consumer.run_of, control_channel)
        heartbeat = Heartbeat(events, s, consumer.executing, self._tuning.heartbeat_s)
        self.ready.set()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(consumer.serve(jobs, self._stop, self._hurry))
            tasks.create_task(control.serve(control_queue, until=consumer.finished))
            # Beats while runs drain too: they are still this runner's.
            tasks.create_task(heartbeat.serve(until=consumer.finished))

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """attempt()'s result, retried with backoff while `what` is unreachable; None when
        shutdown is requested first."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                return await attempt()
            except _UNREACHABLE as exc:
                log.warning("cannot reach %s (%s); retrying in %.1f s", what, exc, delay)
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(2 * delay, RETRY_MAX_S)
        return None
