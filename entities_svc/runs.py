"""Runs: accepting one, the runner's claim on it, and reading runs and their logs."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from peewee import fn

from bob_common import runner_types
from entities_svc import pipelines, plugins, run_status, runners
from entities_svc.clock import now_ms
from entities_svc.errors import FailedPrecondition, Invalid, NotFound
from entities_svc.lifecycle import CLAIMED, TERMINAL, Order, RunStatus, status_name
from entities_svc.models import LogLine, Run, StepResult, database

log = logging.getLogger(__name__)

STOPPED_BEFORE_START = "stopped before a runner picked it up"
# A new run's job is being published by CreateRun; should entities die before the broker
# confirms it, the sweep publishes it once this much time has passed.
UNCONFIRMED_GRACE_MS = 30_000
# Most log lines one GetLogs answers, whatever the caller asks for.
MAX_LOG_LINES = 10_000
# The runner type becomes a routing key and part of a queue name.
_RUNNER_TYPE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_SQL_INT = 2**63 - 1


@dataclass(frozen=True)
class Step:
    index: int
    exit_code: int
    duration_ms: int


@dataclass(frozen=True)
class RunInfo:
    id: str
    group: str
    name: str
    status: RunStatus
    reason: str
    runner_type: str
    runner_id: str
    attempt: int
    created_at_ms: int
    started_at_ms: int
    completed_at_ms: int
    steps: tuple[Step, ...] = ()
    # The definition the run executes (the pipeline's when the run was accepted); loaded
    # only where a job is built from it.
    pipeline: dict[str, Any] | None = None
    # Where the current attempt's log starts.
    first_line_no: int = 0
    # The logger the run was started with; empty for none.
    logger: str = ""
    # When the current attempt was claimed (INITIALIZING) and had its container ready
    # (INITIALIZED); started_at_ms is when its steps started (RUNNING).
    initiated_at_ms: int = 0
    initialized_at_ms: int = 0
    # The journal event that recorded the current status.
    status_event_id: int = 0


@dataclass(frozen=True)
class Claim:
    claimed: bool
    # Why the claim was refused; empty when it succeeded.
    reason: str
    status: RunStatus


def to_domain(row: Run, steps: tuple[Step, ...] = (), with_pipeline: bool = False) -> RunInfo:
    return RunInfo(
        id=row.id,
        group=row.group,
        name=row.name,
        status=RunStatus(row.status),
        reason=row.reason,
        runner_type=row.runner_type,
        runner_id=row.runner_id,
        attempt=row.attempt,
        created_at_ms=row.created_at_ms,
        started_at_ms=row.started_at_ms,
        completed_at_ms=row.completed_at_ms,
        steps=steps,
        pipeline=json.loads(row.pipeline) if with_pipeline else None,
        first_line_no=row.first_line_no,
        logger=row.logger,
        initiated_at_ms=row.initiated_at_ms,
        initialized_at_ms=row.initialized_at_ms,
    )


def _steps_of(run_ids: list[str]) -> dict[str, tuple[Step, ...]]:
    found: dict[str, list[Step]] = defaultdict(list)
    query = (
        StepResult.select()
        .where(StepResult.run.in_(run_ids))
        .order_by(StepResult.run, StepResult.index)
    )
    for row in query:
        found[row.run_id].append(Step(row.index, row.exit_code, row.duration_ms))
    return {run_id: tuple(steps) for run_id, steps in found.items()}


def find_row(run_id: str) -> Run:
    row = Run.get_or_none(Run.id == run_id)
    if row is None:
        raise NotFound(f"Run {run_id} not found")
    return row


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


def create_run(group: str, name: str, runner_type: str = "", logger: str = "") -> RunInfo:
    """Records a PENDING run (attempt 1) with a snapshot of the pipeline's definition.
    Refused while a plugin it needs (its pipeline's providers and stores, its logger)
    is not registered: a run that cannot fetch or keep what it needs would only fail."""
    # Bob's "container" means docker; no type means the default.
    runner_type = runner_types.canonical(runner_type)
    if not _RUNNER_TYPE.match(runner_type):
        raise Invalid(f"Runner type {runner_type!r} is not a valid name")
    with database.atomic():
        pipeline = pipelines.find_row(group, name)
        if pipeline.paused:
            raise FailedPrecondition("Pipeline is paused. Unpause it first.")
        known = runners.known_runner_types()
        if runner_type not in known:
            raise FailedPrecondition(
                f"No runner of type {runner_type!r} has been seen; "
                f"known types: {', '.join(sorted(known))}"
            )
        if missing := _unregistered(json.loads(pipeline.definition), logger):
            raise FailedPrecondition("; ".join(missing))
        now = now_ms()
        row = Run.create(
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
        run_status.entered(row, RunStatus.UNSPECIFIED, at_ms=now)
        row.save(only=[Run.status_event_id])
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


def claim_run(run_id: str, attempt: int, runner_id: str, lease_ms: int) -> Claim:
    """The runner's compare-and-set before it executes a job: only a PENDING run of the
    same attempt becomes INITIALIZING and owned by `runner_id`, for a lease of lease_ms."""
    if not runner_id:
        raise Invalid("runner_id must not be empty")
    # One conditional UPDATE: the database decides between concurrent claimers, and the
    # row count says who won, whatever the isolation level or number of processes.
    now = now_ms()
    with database.atomic():
        won = (
            Run.update(
                status=int(RunStatus.INITIALIZING),
                runner_id=runner_id,
                lease_expires_ms=now + lease_ms,
                # A job claimed was queued, whether or not its confirm was recorded.
                requeue_at_ms=0,
            )
            .where(
                (Run.id == run_id)
                & (Run.status == int(RunStatus.PENDING))
                & (Run.attempt == attempt)
            )
            .execute()
        )
        if won:
            _entered(run_id, RunStatus.PENDING, at_ms=now)
    if won:
        log.info("run %s attempt %d claimed by %s", run_id, attempt, runner_id)
        return Claim(True, "", RunStatus.INITIALIZING)
    row = find_row(run_id)
    status = RunStatus(row.status)
    if status in TERMINAL:
        reason = f"run is {status_name(status)}"
    elif row.attempt != attempt:
        reason = f"stale attempt {attempt}, the run is at attempt {row.attempt}"
    else:
        reason = f"run already claimed by {row.runner_id}"
    log.info("run %s: claim by %s refused: %s", run_id, runner_id, reason)
    return Claim(False, reason, status)


def _entered(run_id: str, old: RunStatus, at_ms: int) -> None:
    """After a compare-and-set UPDATE changed the run's status: its stamps and journal."""
    row = Run.get(Run.id == run_id)
    run_status.entered(row, old, at_ms=at_ms)
    row.save(only=row.dirty_fields)


# Columns of RunInfo read by get_run (all but steps and pipeline), by field name.
_INFO_COLUMNS = (
    Run.id,
    Run.group,
    Run.name,
    Run.status,
    Run.reason,
    Run.runner_type,
    Run.runner_id,
    Run.attempt,
    Run.created_at_ms,
    Run.started_at_ms,
    Run.completed_at_ms,
    Run.first_line_no,
    Run.logger,
    Run.initiated_at_ms,
    Run.initialized_at_ms,
    Run.status_event_id,
)
_INFO_NAMES = tuple(column.name for column in _INFO_COLUMNS)
_NO_STEPS_YET = (RunStatus.PENDING, RunStatus.INITIALIZING, RunStatus.INITIALIZED)
_compiled_sql: dict[tuple[int, str], str] = {}


def _compiled(name: str, build: Callable[[], Any]) -> str:
    """The SQL text of a query, built once per database. The status of a run is the API's
    hottest read, and peewee would otherwise rebuild the same SQL on every call."""
    key = (id(database.obj), name)
    sql = _compiled_sql.get(key)
    if sql is None:
        sql, _ = build().sql()
        _compiled_sql[key] = sql
    return sql


def get_run(run_id: str) -> RunInfo:
    by_id = _compiled("run by id", lambda: Run.select(*_INFO_COLUMNS).where(Run.id == ""))
    found = database.execute_sql(by_id, (run_id,)).fetchone()
    if found is None:
        raise NotFound(f"Run {run_id} not found")
    columns = dict(zip(_INFO_NAMES, found, strict=True))
    info = RunInfo(**{**columns, "status": RunStatus(columns["status"])})
    if info.status in _NO_STEPS_YET:
        return info
    steps_of = _compiled(
        "steps of run",
        lambda: (
            StepResult.select(StepResult.index, StepResult.exit_code, StepResult.duration_ms)
            .where(StepResult.run == "")
            .order_by(StepResult.index)
        ),
    )
    steps = tuple(Step(*row) for row in database.execute_sql(steps_of, (run_id,)))
    return replace(info, steps=steps)


def list_runs(group: str, name: str) -> list[RunInfo]:
    """Runs of a pipeline, oldest first."""
    pipelines.find_row(group, name)
    rows = list(Run.select().where((Run.group == group) & (Run.name == name)).order_by(Run.number))
    steps = _steps_of([row.id for row in rows])
    return [to_domain(row, steps.get(row.id, ())) for row in rows]


def get_logs(run_id: str, offset: int, limit: int) -> list[str]:
    """Lines `offset` to `offset + limit` of the run's log; limit is capped at
    MAX_LOG_LINES, and 0 means no lines."""
    find_row(run_id)
    limit = min(limit, MAX_LOG_LINES)
    if limit <= 0:
        return []
    query = (
        LogLine.select(LogLine.text)
        .where(LogLine.run == run_id)
        .order_by(LogLine.line_no)
        .offset(min(offset, _MAX_SQL_INT))
        .limit(limit)
    )
    return [text for (text,) in query.tuples()]


@dataclass(frozen=True)
class StopRequest:
    run: RunInfo
    # True when a runner executes the run and is told to stop it: entities owes the
    # control fanout a stop (controls.py), and the lease renewal answers it too.
    broadcast: bool


def stop_run(run_id: str) -> StopRequest:
    """A PENDING run becomes STOPPED at once, so its job is refused at claim and never
    starts; an active run is left to its runner, to which a stop is owed (desired and
    control_owed, in the same transaction)."""
    with database.atomic():
        # Conditional, like a claim: of a stop and a claim racing, one wins.
        stopped_pending = (
            Run.update(status=int(RunStatus.STOPPED), reason=STOPPED_BEFORE_START)
            .where((Run.id == run_id) & (Run.status == int(RunStatus.PENDING)))
            .execute()
        )
        if stopped_pending:
            _entered(run_id, RunStatus.PENDING, at_ms=now_ms())
        else:
            # Kept for the runner's lease renewal, in case the broadcast does not reach it,
            # and owed to the control fanout, which entities broadcasts it on (controls.py).
            Run.update(desired=int(Order.STOP), control_owed=int(Order.STOP)).where(
                (Run.id == run_id) & Run.status.in_([int(s) for s in CLAIMED])
            ).execute()
    info = get_run(run_id)
    if stopped_pending:
        log.info("run %s stopped before it started", run_id)
        return StopRequest(info, broadcast=False)
    if info.status in TERMINAL:
        raise FailedPrecondition(f"Run {run_id} has already ended: {status_name(info.status)}")
    log.info("run %s: stop requested while %s", run_id, status_name(info.status))
    return StopRequest(info, broadcast=True)


def set_paused(run_id: str, paused: bool) -> RunInfo:
    """Records that the user wants a claimed run paused (or running again), and owes the
    control fanout the command; the runner learns it from that broadcast or, failing
    that, when it renews its lease."""
    order = int(Order.PAUSE if paused else Order.RUN)
    updated = (
        Run.update(desired=order, control_owed=order)
        .where(
            (Run.id == run_id)
            & Run.status.in_([int(s) for s in CLAIMED])
            & (Run.desired != int(Order.STOP))
        )
        .execute()
    )
    info = get_run(run_id)
    if not updated:
        raise FailedPrecondition(
            f"Run {run_id} is {status_name(info.status)}: only a run that has started and "
            "not ended can be paused or resumed"
        )
    return info


def latest_runs(refs: list[tuple[str, str]]) -> dict[tuple[str, str], RunInfo]:
    """The most recent run of each (group, name) that has one, without steps."""
    if not refs:
        return {}
    groups = {group for group, _ in refs}
    names = {name for _, name in refs}
    newest = (
        Run.select(fn.MAX(Run.number))
        .where(Run.group.in_(groups) & Run.name.in_(names))
        .group_by(Run.group, Run.name)
    )
    wanted = set(refs)
    return {
        (row.group, row.name): to_domain(row)
        for row in Run.select().where(Run.number.in_(newest))
        if (row.group, row.name) in wanted
    }


def count_by_status() -> dict[RunStatus, int]:
    query = Run.select(Run.status, fn.COUNT(Run.id)).group_by(Run.status).tuples()
    return {RunStatus(status): count for status, count in query}


def count_log_lines() -> int:
    return LogLine.select().count()
