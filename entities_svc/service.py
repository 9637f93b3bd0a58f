"""The entities process: one database thread, the gRPC server, and one link to the broker
with what goes through it (the job queue and the controls it publishes on, the run-event
and dead-job consumers); started in that order and stopped in the reverse one. The sweep
publishes what is owed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health

from bob_common import tls
from bob_common.config import EntitiesSettings
from entities_svc import broker, secrets
from entities_svc.access import AccessInterceptor
from entities_svc.controls import ControlSender
from entities_svc.db import DatabaseThread
from entities_svc.dead_jobs import DeadJobs
from entities_svc.events import EventConsumer
from entities_svc.job_queue import JobQueue
from entities_svc.notifier import NotificationSender
from entities_svc.scheduler import Scheduler
from entities_svc.secret_box import SecretBox
from entities_svc.server import start_server
from entities_svc.servicer import EntitiesServicer
from entities_svc.sweeper import Sweeper
from entities_svc.watch import Watchers

log = logging.getLogger(__name__)

# How long in-flight rpcs may take to finish once a stop was requested.
GRACE_S = 5.0


class EntitiesService:
    def __init__(self, settings: EntitiesSettings, grace_s: float = GRACE_S) -> None:
        self.settings = settings
        self.grace_s = grace_s
        self.port = 0
        self.db = DatabaseThread()
        # The one connection to the broker; each part below opens or takes its channel.
        self.link = broker.link(settings.common)
        self.jobs = JobQueue(settings.common, self.link)
        self.controls = ControlSender(self.db, self.link)
        self.sweeper = Sweeper(self.db, self.jobs, self.controls, settings)
        self.dead_jobs = DeadJobs(
            self.db, self.link, self.jobs, settings.max_attempts, job_due=self.sweeper.wake
        )
        self.consumer = EventConsumer(
            self.link,
            self.db,
            settings.event_batch_max,
            event_max_bytes=settings.common.event_max_bytes,
            inflight_max_bytes=settings.events_inflight_max_bytes,
        )
        self.box = SecretBox(settings.secrets_keys)
        # Issue 11: schedules fire here, beside the database their ticks are claimed in;
        # notifications go out from their outbox here.
        self.scheduler = Scheduler(
            self.db,
            catchup_s=settings.schedule_catchup_s,
            allowed_by_default=settings.runner_types_allowed,
            job_due=self.sweeper.wake,
        )
        self.notifier = NotificationSender(
            self.db,
            settings.notifier_policy,
            timeout_s=settings.notify_timeout_s,
            give_up_s=settings.notify_give_up_s,
            retry_max_s=settings.notify_retry_max_s,
        )
        self._scheduling: asyncio.Task[None] | None = None
        self._notifying: asyncio.Task[None] | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._watchers: Watchers | None = None
        self._consuming: asyncio.Task[None] | None = None
        self._sweeping: asyncio.Task[None] | None = None
        self._taking_dead_jobs: asyncio.Task[None] | None = None
        self._hurrying: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Opens the database, serves gRPC, connects to the broker, and starts consuming
        and sweeping; the link keeps retrying in the background while the broker is
        unreachable, and the consumers start once it is up."""
        await self.db.open(self.settings.db_url)
        try:
            await self._open_secrets()
        except BaseException:
            await self.db.close()
            raise
        servicer = EntitiesServicer(
            self.db,
            self.jobs,
            lease_ms=int(self.settings.lease_s * 1000),
            events_applied=lambda: self.consumer.events_applied,
            events_refused=lambda: self.consumer.events_refused,
            job_due=self.sweeper.wake,
            control_owed=self.controls.send_soon,
            box=self.box,
            runner_types_allowed=self.settings.runner_types_allowed,
            scheduler=self.scheduler,
            notifier=self.notifier,
            webhook_delivery_keep_ms=int(self.settings.webhook_delivery_keep_s * 1000),
        )
        self._watchers = servicer.watchers
        common = self.settings.common
        try:
            # With a certificate, TLS only, every caller known by its own and held to
            # what access.RULES lets it call; without, plaintext and open (loopback).
            self._server, self.port, self._health = await start_server(
                servicer,
                self.settings.listen_addr,
                interceptors=[AccessInterceptor()] if common.tls else [],
                credentials=tls.server_credentials(common) if common.tls else None,
            )
        except BaseException:
            await self.db.close()
            raise
        log.info(
            "serving bob.v1.Entities on port %d (%s)",
            self.port,
            "mutual TLS, callers checked" if common.tls else "plaintext, callers not checked",
        )
        await self.link.start()
        self._consuming = asyncio.create_task(self.consumer.run(), name="event-consumer")
        self._taking_dead_jobs = asyncio.create_task(
            self.dead_jobs.consume(declared=self.consumer.connected), name="dead-jobs"
        )
        self._sweeping = asyncio.create_task(self.sweeper.serve(), name="sweeper")
        self._scheduling = asyncio.create_task(self.scheduler.serve(), name="scheduler")
        self._notifying = asyncio.create_task(self.notifier.serve(), name="notifier")

    async def _open_secrets(self) -> None:
        """Says whether secrets can be stored, and after a key rotation (more than one
        key), seals every stored value with the first key again."""
        if not self.box.usable:
            log.warning(
                "no secrets key (BOB_SECRETS_KEY_FILE or BOB_SECRETS_KEY): storing a secret "
                "fails, and runs that reference secrets cannot start"
            )
            return
        log.info("secret store ready with %d key(s)", self.box.keys)
        await self.db.call(secrets.reencrypt, self.box)

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
        self.scheduler.stop()
        self.notifier.stop()
        if self._scheduling is not None:
            await self._scheduling  # a tick under way commits or rolls back first
        if self._notifying is not None:
            # A delivery under way may wait for its notifier up to BOB_NOTIFY_TIMEOUT_S: it
            # is cut short, and its notification, still owed, is sent again later.
            self._notifying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifying
        if self._sweeping is not None:
            await self._sweeping
        if self._consuming is not None:
            try:
                await self._consuming
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("event consumer failed")
        if self._server is not None:
            if self._health is not None:
                await self._health.enter_graceful_shutdown()
            # Journal streams never end by themselves: ended now, not after the grace.
            if self._watchers is not None:
                self._watchers.stop()
            await self._server.stop(self.grace_s)
        if self._taking_dead_jobs is not None:
            # Still waiting for the broker, if it has not started consuming yet.
            self._taking_dead_jobs.cancel()
            try:
                await self._taking_dead_jobs
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("dead-job consumer failed")
        await self.controls.close()
        await self.link.close()
        await self.db.close()
        log.info("stopped")

    async def run(self, stopping: asyncio.Event) -> None:
        await self.start()
        try:
            await self.wait(stopping)
        finally:
            await self.stop()
