"""The runner process: connects, declares what it uses, consumes jobs and control
commands, renews its leases, sweeps orphans, and shuts down in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika.exceptions
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from bob_common import amqp, tls, topology
from bob_common.backoff import until_done
from bob_common.config import RunnerSettings
from runner_svc.errors import ExecutorUnavailable
from runner_svc.executors import Executor
from runner_svc.jobs.active import ActiveRuns
from runner_svc.jobs.claims import RunClaims
from runner_svc.jobs.consumer import JobConsumer
from runner_svc.jobs.control import ControlListener
from runner_svc.jobs.engine_watch import EngineWatch
from runner_svc.jobs.heartbeat import Heartbeat
from runner_svc.jobs.leases import Leases
from runner_svc.jobs.orphans import OrphanSweeper
from runner_svc.plugins.directory import PluginDirectory
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
        # Written by the consumer; read by control, leases, the orphan sweep and executing().
        self._runs = ActiveRuns()

    def request_shutdown(self, why: str = "shutdown requested") -> None:
        """First call: take no new jobs and let running ones drain. Second: don't wait."""
        if self._stop.is_set():
            log.warning("%s again: stopping running jobs now", why)
            self._hurry.set()
        else:
            log.info("%s: taking no new jobs, draining", why)
            self._stop.set()

    def executing(self) -> list[tuple[str, int]]:
        """(run id, attempt) of the runs claimed here and not ended; for tests and tools."""
        return self._runs.executing()

    async def run(self) -> None:
        s = self._settings
        log.info(
            "runner %s (type %s, capacity %d) starting", s.runner_id, s.runner_type, s.capacity
        )
        if not await self._retry("the executor backend", self._start_executor):
            await self._executor.close()
            return
        connection = await self._retry(
            "RabbitMQ", lambda: amqp.connect(s.common.queue_url, f"runner-{s.runner_id}")
        )
        try:
            if connection is not None:
                timeout_s = s.common.grpc_timeout_s
                # TLS with this runner's own certificate when the settings give one. Every
                # call gets a deadline and names the run it is about: the stubs see to it
                # (rpc.with_defaults), cheaper than grpc.aio's interceptor machinery.
                async with tls.aio_channel(s.common) as entities:
                    await self._serve(
                        connection,
                        RunClaims(
                            entities,
                            runner_id=s.runner_id,
                            timeout_s=timeout_s,
                            runner_type=s.runner_type,
                            capacity=s.capacity,
                        ),
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
        # Retried: a runner whose broker user may not declare the shared topology waits
        # for entities to (bob_common/topology.py).
        if not await self._retry("the queue topology", lambda: self._ensure_topology(connection)):
            return
        slots = [await self._slot_queue(connection) for _ in range(s.capacity)]

        events_channel = await connection.channel()
        events = await events_channel.get_exchange(topology.EVENTS_EXCHANGE, ensure=False)

        control_channel = await connection.channel()
        control_queue = await topology.declare_control_queue(control_channel, s.runner_id)

        consumer = JobConsumer(
            s,
            executor=self._executor,
            claims=claims,
            plugins=plugins,
            events=events,
            channel=events_channel,
            tuning=self._tuning,
            runs=self._runs,
        )
        control = ControlListener(self._runs.run_of, control_channel)
        leases = Leases(claims, self._runs)
        heartbeat = Heartbeat(leases, self._tuning.heartbeat_s)
        engine = EngineWatch(self._executor, consumer, claims, heartbeat, s.engine_check_s)
        sweeper = OrphanSweeper(
            self._executor,
            claims,
            runner_id=s.runner_id,
            runs=self._runs,
            interval_s=s.orphan_sweep_s,
        )

        def reconnected(_connection: object) -> None:
            # The control queue was gone meanwhile, and the commands sent to it with it.
            log.info("broker connection re-established; renewing leases now")
            heartbeat.renew_soon()

        # Consuming before `ready`: like the declarations, a broker that fails here fails
        # the start, instead of a consumer that never was.
        await control.start(control_queue)
        await consumer.open(slots)
        self.ready.set()
        connection.reconnect_callbacks.add(reconnected)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(consumer.serve(self._stop, self._hurry))
                tasks.create_task(control.serve(until=consumer.finished))
                # Renews while runs drain too: they are still this runner's.
                tasks.create_task(heartbeat.serve(until=consumer.finished))
                tasks.create_task(sweeper.serve(until=consumer.finished))
                tasks.create_task(engine.serve(until=consumer.finished))
        finally:
            connection.reconnect_callbacks.discard(reconnected)

    async def _ensure_topology(self, connection: AbstractRobustConnection) -> bool:
        channel = await connection.channel()
        try:
            await topology.ensure_for_runner(connection, channel)
        finally:
            if not channel.is_closed:
                await channel.close()
        return True

    async def _slot_queue(self, connection: AbstractRobustConnection) -> AbstractQueue:
        """The job queue on a channel of its own with prefetch 1, for one slot (jobs/slots.py)."""
        s = self._settings
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)
        return await topology.declare_job_queue(channel, s.runner_type, s.common.queue_max_jobs)

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """attempt()'s result, retried with backoff while `what` is unreachable; None when
        shutdown is requested first."""
        return await until_done(
            attempt,
            what=what,
            errors=_UNREACHABLE,
            log=log,
            stop=self._stop,
            most_s=RETRY_MAX_S,
        )
