"""Takes jobs from bob.jobs.<type> through its slots (slots.py), claims them and runs them.

A job is acked once its claim has decided: from then on the run is owned in entities and
held by the lease the heartbeat renews, not by an unacked delivery, so a long build is never
redelivered mid-run. A shutdown stops taking jobs, lets the running ones finish up to
settings.drain_s, and releases the rest to entities, which queues them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from bob_common import backoff
from bob_common.amqp import MessageDecodeError, dead_letter, decode, report_error
from bob_common.config import RunnerSettings
from bob_pb import messages_pb2
from runner_svc.errors import (
    EntitiesUnavailable,
    EventsUnavailable,
    ExecutorUnavailable,
    RunnerError,
)
from runner_svc.executors import Executor
from runner_svc.jobs.active import Active, ActiveRuns
from runner_svc.jobs.claims import RunClaims
from runner_svc.jobs.slots import JobSlot
from runner_svc.plugins.directory import PluginDirectory
from runner_svc.plugins.transfer import PluginHttp
from runner_svc.reporting.logger_copy import LogCopies
from runner_svc.reporting.reporter import RunReporter
from runner_svc.reporting.runlog import run_logger
from runner_svc.run import Run
from runner_svc.spec import from_job
from runner_svc.tuning import Tuning

log = logging.getLogger(__name__)

SERVICE = "runner"
# A job that cannot be claimed because entities is unreachable goes back to the queue
# after base * 2**deliveries seconds, at most max: the broker counts deliveries and
# dead-letters a job after topology.DELIVERY_LIMIT, so the wait grows instead.
CLAIM_RETRY_BASE_S = 1.0
CLAIM_RETRY_MAX_S = 30.0


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
        runs: ActiveRuns,
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._claims = claims
        self._plugins = plugins
        self._http = PluginHttp(tuning.plugin_timeout_s, settings.plugin_policy)
        # Copies of the logs of runs started with a logger.
        self._copies = LogCopies(
            plugins.logger, timeout_s=tuning.plugin_timeout_s, policy=settings.plugin_policy
        )
        self._tuning = tuning
        self._events = events
        self._channel = channel  # for dead letters and error reports
        # The runs taken here, from their delivery to their end; this consumer is its writer.
        self._runs = runs
        self._slots: list[JobSlot] = []
        self._stopping = asyncio.Event()
        # Set once every job has finished or been released.
        self.finished = asyncio.Event()

    async def open(self, queues: Sequence[AbstractQueue]) -> None:
        """Starts consuming with one slot per queue (each on a channel of its own)."""
        self._slots = [JobSlot(n, q, self._take) for n, q in enumerate(queues, 1)]
        await asyncio.gather(*(slot.open() for slot in self._slots))
        log.info("consuming %s with %d slot(s)", queues[0].name, len(self._slots))

    async def pause_taking(self) -> None:
        """Takes no new jobs (the engine is away): they stay in the queue for other
        runners; the jobs being taken go on."""
        await asyncio.gather(*(slot.pause() for slot in self._slots))

    async def resume_taking(self) -> None:
        if not self._stopping.is_set():
            await asyncio.gather(*(slot.resume() for slot in self._slots))

    async def serve(self, stop: asyncio.Event, hurry: asyncio.Event) -> None:
        """Takes jobs until `stop`, then drains: running jobs get settings.drain_s to
        finish (cut short by `hurry`), the rest are stopped and released."""
        try:
            await stop.wait()
            # The consumers go first, so no new job starts while the running ones drain.
            self._stopping.set()
            await asyncio.gather(*(slot.close() for slot in self._slots))
            await self._drain(hurry)
        finally:
            self._stopping.set()
            await self._release_the_rest()
            await self._copies.close()
            self.finished.set()

    def _tasks(self) -> set[asyncio.Task[None]]:
        return {task for slot in self._slots for task in slot.tasks}

    async def _drain(self, hurry: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.drain_s
        if self._tasks():
            log.info(
                "waiting up to %.1f s for %d running job(s)",
                self._settings.drain_s,
                len(self._tasks()),
            )
        while (tasks := self._tasks()) and not hurry.is_set() and loop.time() < deadline:
            hurried = asyncio.create_task(hurry.wait())
            try:
                await asyncio.wait(
                    {*tasks, hurried},
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                hurried.cancel()

    async def _release_the_rest(self) -> None:
        """Stops what still runs (its workspace is removed, nothing final is published)
        and gives each claimed run back to entities, which queues it as the next attempt."""
        for slot in self._slots:
            await slot.close()
        tasks = self._tasks()
        if not tasks:
            return
        claimed = self._runs.claimed()
        log.warning("stopping %d running job(s); their runs are released", len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(self._release(run) for run in claimed if not run.ended and not run.abandoned)
        )

    async def _release(self, run: Run, why: str = "shut down") -> None:
        spec = run.spec
        rlog = run_logger(log, spec.run_id)
        reason = f"runner {self._settings.runner_id} {why}"
        try:
            await self._claims.release(spec.run_id, spec.attempt, reason)
        except RunnerError as exc:
            rlog.warning(
                "could not release attempt %d (%s); its lease will expire", spec.attempt, exc
            )
            return
        rlog.info("released attempt %d; entities queues the run again", spec.attempt)

    async def _take(self, message: AbstractIncomingMessage) -> None:
        """One delivery, from its claim to the end of its run."""
        try:
            job = decode(message, messages_pb2.Job)
        except MessageDecodeError as exc:
            await dead_letter(self._channel, SERVICE, message, exc.reason)
            return
        rlog = run_logger(log, job.run_id)
        if self._stopping.is_set():
            rlog.info("runner is shutting down; job handed back")
            await _settle(message.nack(requeue=True), message)
            return
        current = self._runs.get(job.run_id)
        if current is not None and current.run.spec.attempt >= job.attempt:
            # E.g. published twice: the claim would refuse it anyway.
            rlog.info("duplicate delivery of a run executing here; acked")
            await _settle(message.ack(), message)
            return
        events = RunReporter(
            self._events,
            run_id=job.run_id,
            attempt=job.attempt,
            runner_id=self._settings.runner_id,
            first_line_no=job.first_line_no,
            max_event_bytes=self._settings.common.event_max_bytes,
            max_line_bytes=self._settings.log_line_max_bytes,
        )
        active = Active(self._new_run(job, events), events)
        if current is None:
            # Registered before the claim, so a STOP racing with the claim is not lost.
            self._runs.register(active)
        try:
            if await self._claim(active, message, current):
                await self._execute(active)
        finally:
            self._runs.unregister(active)
            active.ended.set()

    def _new_run(self, job: messages_pb2.Job, events: RunReporter) -> Run:
        return Run(
            from_job(job),
            self._executor,
            self._copies.reporter(job.logger, job.run_id, events),
            plugins=self._plugins,
            http=self._http,
            batch_lines=self._settings.log_batch_lines,
            flush_s=self._settings.log_flush_s,
            tuning=self._tuning,
            # Asked only once the claim is held: entities answers only its holder.
            secrets=self._claims.secrets,
            redacted_vars=self._settings.redacted_vars,
        )

    async def _claim(
        self, active: Active, message: AbstractIncomingMessage, older: Active | None
    ) -> bool:
        """Claims the run and settles the delivery; True when the run is to execute here."""
        spec = active.run.spec
        rlog = run_logger(log, spec.run_id)
        try:
            claim = await self._claims.claim(spec.run_id, spec.attempt)
        except EntitiesUnavailable as exc:
            # Retried by the broker, not here (so not with bob_common.backoff.until_done):
            # the job goes back to the queue, for any runner, and the backoff grows with
            # the delivery count, which the broker also uses to dead-letter it.
            deliveries = int((message.headers or {}).get("x-delivery-count") or 0)
            delay = min(CLAIM_RETRY_MAX_S, CLAIM_RETRY_BASE_S * 2**deliveries)
            rlog.warning("cannot claim (%s); handing the job back in %.1f s", exc, delay)
            await backoff.pause(self._stopping, delay)
            await _settle(message.nack(requeue=True), message)
            return False
        except BaseException:  # e.g. cancelled as the runner stops: the job goes back
            await _settle(message.nack(requeue=True), message)
            raise
        # Decided: the run is owned in entities from now on, not in the queue.
        await _settle(message.ack(), message)
        if not claim.claimed:
            rlog.info("not claimed (%s); acked without running", claim.reason)
            return False
        active.events.sign_with(claim.secret)
        active.run.held(claim.secret)
        if older is not None:
            # Entities gave the run a new attempt, here: the older one is nobody's.
            await older.run.abandon()
            await older.ended.wait()
            self._runs.register(active)
        active.claimed = True
        return True

    async def _execute(self, active: Active) -> None:
        run = active.run
        spec = run.spec
        rlog = run_logger(log, spec.run_id)
        rlog.info("claimed attempt %d: %d step(s) in %s", spec.attempt, len(spec.steps), spec.image)
        try:
            outcome = await run.execute()
        except asyncio.CancelledError:
            rlog.warning("stopped as the runner shuts down; the run is released")
            raise
        except ExecutorUnavailable as exc:
            # The engine went away before the run had its workspace: no step ran, so the
            # run goes back to the queue (a new attempt) for a runner whose engine answers.
            rlog.warning("%s: handing the run back", exc)
            await self._release(run, f"could not reach its engine ({exc})")
            return
        except EventsUnavailable as exc:
            # Nothing more can be said about this run. Its lease is not renewed any more,
            # so entities retries it once the lease expires.
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
        if run.abandoned:
            rlog.info("abandoned run ended; nothing published")
            return
        rlog.info(
            "finished %s%s",
            outcome.status.name,
            f" ({outcome.reason})" if outcome.reason else "",
        )


async def _settle(action: Awaitable[None], message: AbstractIncomingMessage) -> None:
    try:
        await action
    except Exception as exc:  # noqa: BLE001
        # E.g. the delivery's channel is gone after a reconnect: the broker has requeued
        # it already, and the claim turns the redelivery away.
        log.warning("could not settle job delivery %s: %r", message.delivery_tag, exc)
