"""The entities process: one database thread, the gRPC server and the event consumer,
started in that order and stopped in the reverse one."""

from __future__ import annotations

import asyncio
import logging
import socket

import grpc
from grpc_health.v1 import health

from bob_common.config import EntitiesSettings
from entities_svc.controls import ControlSender
from entities_svc.db import DatabaseThread
from entities_svc.dead_jobs import DeadJobs
from entities_svc.events import EventConsumer
from entities_svc.job_queue import JobQueue
from entities_svc.server import start_server
from entities_svc.servicer import EntitiesServicer
from entities_svc.sweeper import Sweeper

log = logging.getLogger(__name__)

# How long in-flight rpcs may take to finish once a stop was requested.
GRACE_S = 5.0


class EntitiesService:
    def __init__(self, settings: EntitiesSettings, grace_s: float = GRACE_S) -> None:
        self.settings = settings
        self.grace_s = grace_s
        self.port = 0
        self.db = DatabaseThread()
        self.consumer = EventConsumer(
            settings.common.queue_url,
            f"entities-{socket.gethostname()}",
            self.db,
            settings.event_batch_max,
        )
        self.jobs = JobQueue(settings.common)
        self.controls = ControlSender(self.db, self.jobs.link)
        self.sweeper = Sweeper(self.db, self.jobs, self.controls, settings)
        self.dead_jobs = DeadJobs(self.db, self.jobs, settings.max_attempts, self.sweeper.wake)
        self.jobs.on_channel = self.dead_jobs.attach
        self._sweeper_task: asyncio.Task[None] | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._consuming: asyncio.Task[None] | None = None
        self._hurrying: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Opens the database, serves gRPC, and starts consuming events and sweeping; both
        keep retrying in the background while the broker is unreachable."""
        await self.db.open(self.settings.db_url)
        servicer = EntitiesServicer(
            self.db,
            self.jobs,
            lease_ms=int(self.settings.lease_s * 1000),
            events_applied=lambda: self.consumer.events_applied,
            job_due=self.sweeper.wake,
            control_owed=self.controls.send_soon,
        )
        try:
            self._server, self.port, self._health = await start_server(
                servicer, self.settings.listen_addr
            )
        except BaseException:
            await self.db.close()
            raise
        log.info("serving bob.v1.Entities on port %d", self.port)
        await self.jobs.start()
        self._consuming = asyncio.create_task(self.consumer.run(), name="event-consumer")
        self._sweeper_task = asyncio.create_task(self.sweeper.serve(), name="sweeper")

    async def wait(self, stopping: asyncio.Event) -> None:
        """Returns when `stopping` is set; raises if the consumer fails."""
        assert self._consuming is not None, "start() first"
        stopper = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({stopper, self._consuming}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if self._consuming.done():
            self._consuming.result()  # raises what killed the consumer

    def hurry(self) -> None:
        """A second signal: cut the grace period short, cancelling in-flight rpcs."""
        self.grace_s = 0
        if self._server is not None and self.consumer.stopped:
            self._hurrying = asyncio.ensure_future(self._server.stop(None))

    async def stop(self) -> None:
        """Stops taking events and lets the current batch commit and be acked, lets
        in-flight rpcs finish within the grace period, then closes the database."""
        self.consumer.stop()
        self.sweeper.stop()
        if self._sweeper_task is not None:
            await self._sweeper_task
        if self._consuming is not None:
            try:
                await self._consuming
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("event consumer failed")
        if self._server is not None:
            if self._health is not None:
                await self._health.enter_graceful_shutdown()
            await self._server.stop(self.grace_s)
        await self.controls.close()
        await self.jobs.close()
        await self.db.close()
        log.info("stopped")

    async def run(self, stopping: asyncio.Event) -> None:
        await self.start()
        try:
            await self.wait(stopping)
        finally:
            await self.stop()
