"""Applying run events (what runners report) to the database, exactly once and in order.

A run keeps `last_seq`, the highest event sequence number applied for its current
attempt. The queue delivers at least once, so an event at or below it is a duplicate and
is skipped; an event of another attempt comes from a superseded runner and is skipped too.
An event beyond last_seq + 1 is early (one before it has not arrived, or failed to
apply): it is not applied, nor anything after it, and the consumer holds it until the
gap is filled (events.py). Whether an event comes from the run's claim holder at all is
decided before, by claims.py.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from bob_common import rpc
from bob_common.run_states import RunStatus, can_transition, status_name
from entities_svc import compiled, run_queries, run_status
from entities_svc.models import LogLine, Run, StepResult, database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusChange:
    status: RunStatus
    reason: str = ""


class Line(NamedTuple):
    # A tuple, not a dataclass: a step may print millions of lines, and a tuple is the row
    # the database takes as it is.
    line_no: int
    text: str
    # bob.v1.LogStream value.
    stream: int = 0


@dataclass(frozen=True)
class LogLines:
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class StepDone:
    index: int
    exit_code: int
    duration_ms: int


@dataclass(frozen=True)
class RunEvent:
    run_id: str
    attempt: int
    seq: int
    runner_id: str
    at_ms: int
    body: StatusChange | LogLines | StepDone


@dataclass
class Outcome:
    """What one batch did, by event count."""

    applied: int = 0
    duplicate: int = 0
    stale_attempt: int = 0
    unknown_run: int = 0
    # Not signed by the run's current claim (claims.py): never applied.
    refused: int = 0
    # (run_id, seq) of the events not applied because one before them is missing.
    early: list[tuple[str, int]] = field(default_factory=list)


def _insert_lines(rows: list[tuple[str, int, str, int]]) -> None:
    """Inserts (run_id, line_no, text, stream) rows, skipping those already stored, with
    one statement prepared once and executemany: log lines are the bulk of all writes, and
    peewee's per-row value handling cost more than the database itself."""
    if rows:
        compiled.insert_many("log lines", 4, _lines_insert, rows)


def _lines_insert(m: list[int]) -> object:
    return LogLine.insert(run=m[0], line_no=m[1], text=m[2], stream=m[3]).on_conflict_ignore()


def _steps_insert(m: list[int]) -> object:
    return StepResult.insert(
        run=m[0], index=m[1], exit_code=m[2], duration_ms=m[3]
    ).on_conflict_ignore()


def apply_events(events: list[RunEvent], rows: dict[str, Run] | None = None) -> Outcome:
    """Applies a batch in one transaction: either every effect is durable or none is.
    Events of one run are applied in seq order whatever order they arrived in. `rows`:
    the runs' rows by id, when the caller has read them in its own transaction."""
    outcome = Outcome()
    by_run: dict[str, list[RunEvent]] = defaultdict(list)
    for event in events:
        by_run[event.run_id].append(event)
    with database.atomic():
        if rows is None:
            rows = {row.id: row for row in run_queries.rows_by_id(list(by_run))}
        else:
            rows = {run_id: rows[run_id] for run_id in by_run if run_id in rows}
        lines: list[tuple[str, int, str, int]] = []
        steps: list[tuple[str, int, int, int]] = []
        for run_id, run_events in by_run.items():
            # Events come over AMQP, not an rpc: what is logged here names its run too.
            with rpc.about_run(run_id):
                row = rows.get(run_id)
                if row is None:
                    log.warning(
                        "run %s: ignoring %d events of an unknown run", run_id, len(run_events)
                    )
                    outcome.unknown_run += len(run_events)
                    continue
                _apply_run(row, sorted(run_events, key=lambda e: e.seq), outcome, lines, steps)
        _insert_lines(lines)
        if steps:
            compiled.insert_many("step results", 4, _steps_insert, steps)
        for row in rows.values():
            compiled.save_dirty(row)
    return outcome


def _apply_run(
    row: Run,
    events: list[RunEvent],
    outcome: Outcome,
    lines: list[tuple[str, int, str, int]],
    steps: list[tuple[str, int, int, int]],
) -> None:
    skipped: Counter[str] = Counter()
    gap = False
    for event in events:
        if event.attempt != row.attempt:
            outcome.stale_attempt += 1
            skipped["of another attempt"] += 1
            continue
        if event.seq <= row.last_seq:
            outcome.duplicate += 1
            skipped["duplicates"] += 1
            continue
        if gap or event.seq != row.last_seq + 1:
            # Gap-free is the runners' promise: an event applied after a gap would be
            # applied before what the gap holds, and the gap's events then skipped as
            # duplicates. Held instead, with every later one (events come in seq order).
            if not gap:
                log.warning(
                    "run %s: event seq %d is ahead of %d; held until the events between arrive",
                    row.id,
                    event.seq,
                    row.last_seq,
                )
            gap = True
            outcome.early.append((row.id, event.seq))
            continue
        row.last_seq = event.seq
        outcome.applied += 1
        body = event.body
        if isinstance(body, StatusChange):
            _change_status(row, event, body)
        elif isinstance(body, LogLines):
            lines.extend((row.id, *line) for line in body.lines)
        else:
            steps.append((row.id, body.index, body.exit_code, body.duration_ms))
    for what, count in skipped.items():
        log.info("run %s: skipped %d events %s", row.id, count, what)


def _change_status(row: Run, event: RunEvent, change: StatusChange) -> None:
    current = RunStatus(row.status)
    if change.status == current:
        return
    if not can_transition(current, change.status):
        log.warning(
            "run %s: ignoring illegal transition %s -> %s (seq %d)",
            row.id,
            status_name(current),
            status_name(change.status),
            event.seq,
        )
        return
    if not row.runner_id:
        row.runner_id = event.runner_id
    # The runner's time of the change, in the run's times and its journal event.
    run_status.change(row, change.status, reason=change.reason, at_ms=event.at_ms)
    log.info(
        "run %s: %s -> %s%s",
        row.id,
        status_name(current),
        status_name(change.status),
        f" ({change.reason})" if change.reason else "",
    )
