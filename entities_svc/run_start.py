"""Starting a run: it is recorded PENDING with its job owed (outbox.py), its job is
published at once, and when the broker refuses the job the run is withdrawn, unless a
runner has claimed it meanwhile or it cannot be removed; then the sweep publishes the job
later, as it does for every job owed and not confirmed."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from bob_common import rpc, runner_types
from bob_common.broker_link import QueueFull, QueueUnavailable
from bob_common.run_states import RunStatus, status_name
from bob_pb import messages_pb2
from entities_svc import (
    compiled,
    pipelines,
    plugins,
    run_status,
    runner_grants,
    runners,
    secrets,
)
from entities_svc.clock import now_ms
from entities_svc.db import DatabaseThread
from entities_svc.errors import FailedPrecondition, Invalid, NotQueued
from entities_svc.job_queue import JobQueue, job_of
from entities_svc.models import LogLine, Run, StepResult, database
from entities_svc.run_queries import RunInfo, find_row, to_domain

log = logging.getLogger(__name__)

# A new run's job is being published by start_run; should entities die before the broker
# confirms it, the sweep publishes it once this much time has passed.
UNCONFIRMED_GRACE_MS = 30_000


async def start_run(
    db: DatabaseThread,
    jobs: JobQueue,
    group: str,
    name: str,
    runner_type: str = "",
    logger: str = "",
    allowed_by_default: tuple[str, ...] = (runner_types.DEFAULT,),
    *,
    secrets_readable: bool = True,
) -> messages_pb2.Job:
    """Records the run and queues its job; the job, once the broker has confirmed it (or
    the run stands anyway, see above). NotQueued when the broker refused it and the run
    was withdrawn."""
    info = await db.call(
        create_run, group, name, runner_type, logger, allowed_by_default, secrets_readable
    )
    job = job_of(info)
    try:
        await jobs.publish(job)
    except QueueFull:
        why = f"the job queue for {info.runner_type} runners is full"
        message = (
            f"The job queue for {info.runner_type} runners is full "
            "(BOB_QUEUE_MAX_JOBS); retry later"
        )
    except QueueUnavailable as exc:
        why = "the job queue is unavailable"
        message = f"The job queue is unavailable, the run was not started: {exc}"
    else:
        return job
    if not await _withdrawn(db, info.id, why):
        return job  # a runner claimed it: the job was queued after all
    raise NotQueued(message)


async def _withdrawn(db: DatabaseThread, run_id: str, why: str) -> bool:
    """Removes a run whose job was not confirmed; False when the run stays, because a
    runner has claimed it meanwhile (the confirm was only late) or it could not be
    removed (the sweep will queue it)."""
    try:
        await db.call(discard_run, run_id, why)
    except FailedPrecondition:
        return False
    except Exception:
        # Left PENDING and due: the sweep queues it later, so the start stands.
        log.exception("run %s: could not discard the unqueued run", run_id)
        return False
    return True


def _unregistered(definition: dict[str, Any], logger: str) -> list[str]:
    """What the run would need that is not registered, one sentence each."""
    uses = pipelines.plugin_uses(definition)
    if logger:
        uses.append((plugins.LOGGERS, logger, ""))
    found = {
        registry: plugins.registered(registry, [name for r, name, _ in uses if r is registry])
        for registry in {registry for registry, _, _ in uses}
    }
    return [
        f"{registry.label} {name!r}" + (f" of {what}" if what else "") + " is not registered"
        for registry, name, what in uses
        if name not in found[registry]
    ]


def create_run(
    group: str,
    name: str,
    runner_type: str = "",
    logger: str = "",
    allowed_by_default: tuple[str, ...] = (runner_types.DEFAULT,),
    secrets_readable: bool = True,
    *,
    scheduled_by: tuple[str, str, int] | None = None,
) -> RunInfo:
    """Records a PENDING run (attempt 1) with a snapshot of the pipeline's definition.
    `scheduled_by` (cron, timezone, tick ms): a schedule starts it (schedules.py); its job
    is then due at once, for the sweep to publish (nobody waits for it here).
    Refused for a runner type the pipeline may not run on (runner_grants.py), and while a
    plugin it needs (its pipeline's providers and stores, its logger) is not registered,
    or a secret it references is not stored (or, without a key, not readable): a run that
    cannot fetch or keep what it needs would only fail."""
    # Bob's "container" means docker; no type means the default.
    runner_type = runner_types.canonical(runner_type)
    if problem := runner_types.invalid(runner_type):
        raise Invalid(problem)
    with database.atomic():
        pipeline = pipelines.find_row(group, name)
        # First: a refused start learns nothing about the runners or plugins there are.
        runner_grants.check(pipeline, runner_type, allowed_by_default)
        if pipeline.paused:
            raise FailedPrecondition("Pipeline is paused. Unpause it first.")
        known = runners.known_runner_types()
        if runner_type not in known:
            raise FailedPrecondition(
                f"No runner of type {runner_type!r} has been seen; "
                f"known types: {', '.join(sorted(known))}"
            )
        definition = json.loads(pipeline.definition)
        missing = _unregistered(definition, logger) + secrets.missing(definition, secrets_readable)
        if missing:
            raise FailedPrecondition("; ".join(missing))
        now = now_ms()
        row = Run(
            id=f"r-{uuid.uuid4()}",
            group=group,
            name=name,
            status=int(RunStatus.PENDING),
            runner_type=runner_type,
            created_at_ms=now,
            pipeline=pipeline.definition,
            requeue_at_ms=now + UNCONFIRMED_GRACE_MS,
            logger=logger,
        )
        if scheduled_by is not None:
            row.schedule_cron, row.schedule_timezone, row.schedule_tick_ms = scheduled_by
            row.requeue_at_ms = now
        # Journaled first, so that the row is inserted once, with its event's id.
        run_status.entered(row, RunStatus.UNSPECIFIED, at_ms=now)
        row.number = compiled.insert_row(row)
    with rpc.about_run(row.id):  # the rpc named no run: this one has just been made
        log.info("run %s of %s/%s is pending for %s runners", row.id, group, name, runner_type)
    return to_domain(row, with_pipeline=True)


def discard_run(run_id: str, why: str = "its job could not be queued") -> None:
    """Removes a PENDING run whose job could not be published."""
    with database.atomic():
        row = find_row(run_id)
        if row.status != RunStatus.PENDING:
            raise FailedPrecondition(
                f"Run {run_id} is {status_name(row.status)}; only a pending run can be discarded"
            )
        LogLine.delete().where(LogLine.run == run_id).execute()
        StepResult.delete().where(StepResult.run == run_id).execute()
        row.delete_instance()
        run_status.discarded(row, why)
    log.info("run %s discarded", run_id)
