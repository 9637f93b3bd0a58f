"""Takes jobs from bob.jobs.<type>, claims them and runs them.

The channel's prefetch is the runner's capacity and a job stays unacked until its run has
published its terminal status, so the broker never hands this runner more jobs than it
can run at once: the prefetch IS the back-pressure, and waiting jobs stay in the queue
for whichever runner frees up first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from bob_common.amqp import (
    MessageDecodeError,
    cancel_consuming,
    dead_letter,
    decode,
    report_error,
)
from bob_common.config import RunnerSettings
from bob_pb import messages_pb2
from runner_svc.claims import RunClaims
from runner_svc.errors import EntitiesUnavailable, EventsUnavailable
from runner_svc.executor import Executor
from runner_svc.plugins import PluginDirectory
from runner_svc.reporter import RunReporter
from runner_svc.run import Run
from runner_svc.runlog import run_logger
from runner_svc.spec import from_job
from runner_svc.transfer import PluginHttp
from runner_svc.tuning import Tuning

log = logging.getLogger(__name__)

SERVICE = "runner"
# A job that cannot be claimed because entities is unreachable goes back to the queue
# after base * 2**deliveries seconds, at most max: the broker counts deliveries and
# dead-letters a job after topology.DELIVERY_LIMIT, so the wait grows instead.
CLAIM_RETRY_BASE_S = 1.0
CLAIM_RETRY_MAX_S = 30.0
# How long a shutdown waits for the broker to confirm a consumer's cancel.
@dataclass
class _Active:
    run: Run
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    # Claimed in entities: executing here, as far as heartbeats are concerned.
    claimed: bool = False


class JobConsumer:
    def __init__(
        self,
        settings: RunnerSettings,
        *,
        executor: Executor,
        claims: RunClaims,
        plugins: PluginDirectory,
        events: AbstractExchange,
        channel: AbstractChannel,
        tuning: Tuning,
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._claims = claims
        self._plugins = plugins
        self._http = PluginHttp(tuning.plugin_timeout_s)
        self._tuning = tuning
        self._events = events
        self._channel = channel
        self._active: dict[str, _Active] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The prefetch bounds deliveries, but after a reconnect the broker redelivers the
        # jobs still running here and sends new ones: the slots keep the bound regardless.
        self._slots = asyncio.Semaphore(settings.capacity)
        self._closing = False
        # Set once every job has finished or been handed back.
        self.finished = asyncio.Event()

    def run_of(self, run_id: str) -> Run | None:
        """The run with this id if this runner is executing it."""
        active = self._active.get(run_id)
        return active.run if active else None

    def executing(self) -> list[str]:
        """Ids of the runs claimed here and not ended yet."""
        return [run_id for run_id, active in self._active.items() if active.claimed]

    async def serve(
        self, queue: AbstractQueue, stop: asyncio.Event, hurry: asyncio.Event
    ) -> None:
        """Consumes until `stop`, then drains: running jobs get settings.drain_s to
        finish (cut short by `hurry`), the rest are stopped and handed back."""
        tag = await queue.consume(self._on_job)
        log.info("consuming %s with capacity %d", queue.name, self._settings.capacity)
        try:
            await stop.wait()
            # The consumer goes first, so no new job starts while the running ones drain.
            self._closing = True
            await cancel_consuming(queue, tag)
            await self._drain(hurry)
        finally:
            self._closing = True
            await self._hand_back()
            self.finished.set()

    async def _drain(self, hurry: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.drain_s
        if self._tasks:
            log.info("waiting up to %.1f s for %d running job(s)",
                     self._settings.drain_s, len(self._tasks))
        while self._tasks and not hurry.is_set() and loop.time() < deadline:
            hurried = asyncio.create_task(hurry.wait())
            try:
                await asyncio.wait(
                    {*self._tasks, hurried},
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                hurried.cancel()

    async def _hand_back(self) -> None:
        tasks = set(self._tasks)
        if not tasks:
            return
        log.warning("stopping %d running job(s); they go back to the queue", len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_job(self, message: AbstractIncomingMessage) -> None:
        # Each job runs in a task of ours, so shutdown can wait for it and cancel it.
        task = asyncio.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            # Acks on return; an exception or cancellation requeues the job.
            async with message.process(requeue=True, ignore_processed=True):
                await self._process(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Settling the delivery failed (e.g. its channel is gone after a reconnect):
            # the broker redelivers it, and the claim turns the duplicate away.
            log.exception("could not settle job delivery %s", message.delivery_tag)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        try:
            job = decode(message, messages_pb2.Job)
        except MessageDecodeError as exc:
            await dead_letter(self._channel, SERVICE, message, exc.reason)
            return
        rlog = run_logger(log, job.run_id)
        if self._closing:
            rlog.info("runner is shutting down; job handed back")
            await message.nack(requeue=True)
            return
        if (current := self._active.get(job.run_id)) is not None:
            # E.g. redelivered after a reconnect: settled once the run here has ended.
            rlog.info("duplicate delivery of a run executing here; acked when it ends")
            await current.ended.wait()
            return
        active = _Active(Run(
            from_job(job),
            self._executor,
            RunReporter(
                self._events,
                run_id=job.run_id,
                attempt=job.attempt,
                runner_id=self._settings.runner_id,
            ),
            plugins=self._plugins,
            http=self._http,
            batch_lines=self._settings.log_batch_lines,
            flush_s=self._settings.log_flush_s,
            tuning=self._tuning,
        ))
        # Registered before the claim, so a STOP racing with the claim is not lost.
        self._active[job.run_id] = active
        try:
            async with self._slots:
                await self._claim_and_execute(active, message)
        finally:
            del self._active[job.run_id]
            active.ended.set()

    async def _claim_and_execute(self, active: _Active, message: AbstractIncomingMessage) -> None:
        run = active.run
        spec = run.spec
        rlog = run_logger(log, spec.run_id)
        try:
            claim = await self._claims.claim(spec.run_id, spec.attempt)
        except EntitiesUnavailable as exc:
            deliveries = int((message.headers or {}).get("x-delivery-count") or 0)
            delay = min(CLAIM_RETRY_MAX_S, CLAIM_RETRY_BASE_S * 2**deliveries)
            rlog.warning("cannot claim (%s); handing the job back in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            await message.nack(requeue=True)
            return
        if not claim.claimed:
            rlog.info("not claimed (%s); acked without running", claim.reason)
            return
        active.claimed = True
        rlog.info("claimed attempt %d: %d step(s) in %s",
                  spec.attempt, len(spec.steps), spec.image)
        try:
            outcome = await run.execute()
        except asyncio.CancelledError:
            rlog.warning("abandoned as the runner stops; the job goes back to the queue")
            raise
        except EventsUnavailable as exc:
            # Nothing more can be said about this run; entities will notice the silence.
            rlog.error("giving the run up: %s", exc)
            await report_error(self._channel, SERVICE, f"run {spec.run_id}: {exc}")
            return
        except Exception as exc:
            rlog.exception("runner error")
            await report_error(self._channel, SERVICE, f"run {spec.run_id}: {exc!r}")
            try:
                await run.fail(f"runner error: {exc}")
            except EventsUnavailable:
                pass
            return
        rlog.info("finished %s%s", messages_pb2.RunStatus.Name(outcome.status),
                  f" ({outcome.reason})" if outcome.reason else "")
