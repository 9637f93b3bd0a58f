"""Reading runs: the RunInfo a run is seen as, one run, a pipeline's runs, a run's log,
the latest run of each pipeline, and counts. The status of one run is the API's hottest
read, so its SQL is built once per database and kept."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from peewee import fn

from bob_common.run_states import RunStatus
from entities_svc import compiled, pipelines
from entities_svc.errors import NotFound
from entities_svc.models import LogLine, Run, StepResult

# Most log lines one GetLogs answers, whatever the caller asks for.
MAX_LOG_LINES = 10_000
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
    # Issue 11: the schedule (cron, timezone) and tick (ms) that started the run; None for
    # a run started otherwise.
    scheduled_by: tuple[str, str, int] | None = None
    # The forge event that started it, JSON (webhooks.py); "" for other starts.
    trigger: str = ""


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
        status_event_id=row.status_event_id,
        scheduled_by=(
            (row.schedule_cron, row.schedule_timezone, row.schedule_tick_ms)
            if row.schedule_cron
            else None
        ),
        trigger=row.trigger,
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


def _runs_by_id(m: list[int]) -> object:
    return Run.select().where(Run.id.in_(m))


def rows_by_id(run_ids: list[str]) -> list[Run]:
    """The rows of those of these runs that exist, in no particular order."""
    return compiled.select_rows(Run, ("by id", len(run_ids)), run_ids, _runs_by_id)  # type: ignore[return-value]


def find_row(run_id: str) -> Run:
    found = rows_by_id([run_id])
    if not found:
        raise NotFound(f"Run {run_id} not found")
    return found[0]


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
    Run.schedule_cron,
    Run.schedule_timezone,
    Run.schedule_tick_ms,
    Run.trigger,
)
_INFO_NAMES = tuple(column.name for column in _INFO_COLUMNS)
_NO_STEPS_YET = (RunStatus.PENDING, RunStatus.INITIALIZING, RunStatus.INITIALIZED)


def _by_id(m: list[int]) -> object:
    return Run.select(*_INFO_COLUMNS).where(Run.id == m[0])


def _steps_of_run(m: list[int]) -> object:
    return (
        StepResult.select(StepResult.index, StepResult.exit_code, StepResult.duration_ms)
        .where(StepResult.run == m[0])
        .order_by(StepResult.index)
    )


def get_run(run_id: str) -> RunInfo:
    # The status of a run is the API's hottest read: its SQL is built once (compiled.py).
    found = compiled.execute("run by id", _by_id, (run_id,)).fetchone()
    if found is None:
        raise NotFound(f"Run {run_id} not found")
    columns = dict(zip(_INFO_NAMES, found, strict=True))
    by = (columns.pop("schedule_cron"), columns.pop("schedule_timezone"))
    tick_ms = columns.pop("schedule_tick_ms")
    scheduled_by = (*by, tick_ms) if by[0] else None
    info = RunInfo(
        **{**columns, "status": RunStatus(columns["status"]), "scheduled_by": scheduled_by}
    )
    if info.status in _NO_STEPS_YET:
        return info
    rows = compiled.execute("steps of run", _steps_of_run, (run_id,))
    steps = tuple(Step(*row) for row in rows)
    return replace(info, steps=steps)


def list_runs(
    group: str,
    name: str,
    after_run_id: str = "",
    limit: int | None = None,
    newest_first: bool = False,
) -> list[RunInfo]:
    """Runs of a pipeline, oldest first (or newest first); only those after
    `after_run_id` in that order (a run of the pipeline, else NOT_FOUND), at most `limit`."""
    pipelines.find_row(group, name)
    order = Run.number.desc() if newest_first else Run.number
    query = Run.select().where((Run.group == group) & (Run.name == name)).order_by(order)
    if after_run_id:
        after = find_row(after_run_id)
        if (after.group, after.name) != (group, name):
            raise NotFound(f"Run {after_run_id} of pipeline {group}/{name} not found")
        query = query.where(
            Run.number < after.number if newest_first else Run.number > after.number
        )
    if limit is not None:
        query = query.limit(limit)
    rows = list(query)
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


def tail_offset(run_id: str, lines: int) -> int:
    """Where the last `lines` lines of the run's log start (lines to skip)."""
    find_row(run_id)
    held = LogLine.select().where(LogLine.run == run_id).count()
    return max(0, held - lines)


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


def pipelines_with_latest_run(
    group: str,
    name: str,
    status: int,
    after: tuple[str, str] | None = None,
    limit: int | None = None,
) -> list[tuple[pipelines.StoredPipeline, RunInfo | None]]:
    """The pipelines pipelines.list_pipelines finds, each with its latest run, if any."""
    found = pipelines.list_pipelines(group, name, status, after, limit)
    latest = latest_runs([(p.group, p.name) for p in found])
    return [(p, latest.get((p.group, p.name))) for p in found]


@dataclass(frozen=True)
class Stats:
    runs_by_status: dict[RunStatus, int]
    pipelines: int
    log_lines: int


def stats() -> Stats:
    return Stats(count_by_status(), pipelines.count_pipelines(), count_log_lines())


def count_by_status() -> dict[RunStatus, int]:
    query = Run.select(Run.status, fn.COUNT(Run.id)).group_by(Run.status).tuples()
    return {RunStatus(status): count for status, count in query}


def count_log_lines() -> int:
    return LogLine.select().count()
