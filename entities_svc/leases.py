"""Leases: a runner owns a claimed run only as long as it renews its lease.

The queue delivers jobs, but runs are owned here. A claim gives the runner a lease of
`lease_ms`; its heartbeat, the lease renewal, renews it (and records the runner) and
learns, in the same answer, what the user wants done with the run (go on, pause, stop)
or that the run is no longer its own. A run whose
lease expires is lost: it becomes PENDING again as a new attempt, queued by entities, up
to `max_attempts` lost executions, and then fails with the reason "runner lost". A run a
runner hands back on shutdown becomes a new attempt too, without counting as lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from peewee import fn

from bob_common.log_markers import SYSTEM_STREAM, system_text
from bob_common.run_states import CLAIMED, Order, RunStatus, status_name
from entities_svc import run_queries, run_status, runners
from entities_svc.clock import now_ms
from entities_svc.errors import FailedPrecondition, Invalid
from entities_svc.models import LogLine, Run, StepResult, database

log = logging.getLogger(__name__)

RUNNER_LOST = "runner lost"
_CLAIMED = [int(s) for s in CLAIMED]


@dataclass(frozen=True)
class Lost:
    run_id: str
    runner_id: str
    attempt: int
    # The new attempt, or 0 when the run failed instead.
    retried_as: int


def renew(
    runner_id: str,
    reported: list[tuple[str, int]],
    lease_ms: int,
    seen: runners.Heartbeat | None = None,
) -> list[Order]:
    """Extends the lease of each (run_id, attempt) the runner still owns and answers an
    order for each, in the same order. A run it does not own (another attempt, another
    runner, ended, unknown) is to be abandoned. The renewal is the runner's one liveness
    signal: what it says of itself, `seen`, is recorded in the same transaction."""
    if not runner_id:
        raise Invalid("runner_id must not be empty")
    with database.atomic():
        if seen is not None:
            runners.record_heartbeats([seen])
        return _renew(runner_id, reported, lease_ms)


def _renew(runner_id: str, reported: list[tuple[str, int]], lease_ms: int) -> list[Order]:
    ids = [run_id for run_id, _ in reported]
    rows = {
        row.id: row
        for row in Run.select(Run.id, Run.status, Run.attempt, Run.runner_id, Run.desired).where(
            Run.id.in_(ids)
        )
    }

    def owned(run_id: str, attempt: int) -> Run | None:
        row = rows.get(run_id)
        if row and row.attempt == attempt and row.runner_id == runner_id and row.status in _CLAIMED:
            return row
        return None

    kept = [run_id for run_id, attempt in reported if owned(run_id, attempt)]
    if kept:
        Run.update(lease_expires_ms=now_ms() + lease_ms).where(
            Run.id.in_(kept) & (Run.runner_id == runner_id) & Run.status.in_(_CLAIMED)
        ).execute()
    orders = []
    for run_id, attempt in reported:
        row = owned(run_id, attempt)
        orders.append(Order(row.desired or Order.RUN) if row else Order.ABANDON)
    return orders


def release(run_id: str, attempt: int, runner_id: str, reason: str) -> run_queries.RunInfo:
    """A runner hands back a run it will not finish: a new attempt, queued by entities."""
    with database.atomic():
        row = run_queries.find_row(run_id)
        if row.status not in _CLAIMED or row.attempt != attempt or row.runner_id != runner_id:
            raise FailedPrecondition(
                f"Run {run_id} attempt {attempt} is not held by {runner_id}: it is "
                f"{status_name(row.status)} at attempt {row.attempt}"
                + (f" on {row.runner_id}" if row.runner_id else "")
            )
        why = reason or f"runner {runner_id} gave the run back"
        _next_attempt(row, why, lost=False)
    return run_queries.get_run(run_id)


def expire(lease_ms: int, max_attempts: int) -> list[Lost]:
    """Runs whose lease has expired are lost: each is retried as a new attempt, or failed
    once `max_attempts` executions of it were lost."""
    now = now_ms()
    expired = Run.select().where(Run.status.in_(_CLAIMED) & (Run.lease_expires_ms < now))
    found = []
    for row in expired:
        with database.atomic():
            why = (
                f"{RUNNER_LOST}: {row.runner_id or 'the runner'} did not renew its lease for "
                f"{lease_ms / 1000:g} s during attempt {row.attempt}"
            )
            runner_id, attempt = row.runner_id, row.attempt
            row.lost_attempts += 1
            if row.lost_attempts < max_attempts:
                retried_as = _next_attempt(row, why, lost=True)
            else:
                _fail(row, f"{why} ({row.lost_attempts} of {max_attempts} attempts lost)")
                retried_as = 0
            found.append(Lost(row.id, runner_id, attempt, retried_as))
    return found


def requeue_dead_job(run_id: str, attempt: int, why: str, max_attempts: int) -> bool:
    """The broker dead-lettered the job of a PENDING run (delivered again and again,
    never claimed): queue it again, unless that has happened too often. False when the
    run has moved on and the dead job means nothing any more."""
    with database.atomic():
        row = Run.get_or_none(Run.id == run_id)
        if row is None or row.status != RunStatus.PENDING or row.attempt != attempt:
            return False
        row.lost_attempts += 1
        text = f"the job of attempt {attempt} was dead-lettered ({why})"
        if row.lost_attempts < max_attempts:
            _say(row, _next_line(row), f"{text}; queued again")
            row.requeue_at_ms = now_ms()
            row.save()
        else:
            _fail(row, f"{text} ({row.lost_attempts} of {max_attempts} attempts lost)")
    log.warning("run %s: %s", run_id, text)
    return True


def _next_attempt(row: Run, why: str, *, lost: bool) -> int:
    """PENDING again as attempt + 1, due to be queued now; the new attempt's log goes on
    after a line that says why. A run the user asked to stop stops instead (0 returned)."""
    if row.desired == Order.STOP:
        _end(row, RunStatus.STOPPED, f"stopped by request; {why}")
        return 0
    line_no = _next_line(row)
    retrying = f"{why}; retrying as attempt {row.attempt + 1}"
    _say(row, line_no, retrying)
    StepResult.delete().where(StepResult.run == row.id).execute()
    previous = row.attempt
    row.attempt += 1
    run_status.change(row, RunStatus.PENDING, why=retrying)
    row.runner_id = ""
    # The old claim is over: its runner's late events are refused from now on.
    row.claim_key = ""
    row.last_seq = 0
    row.lease_expires_ms = 0
    row.desired = int(Order.UNSPECIFIED)
    row.control_owed = int(Order.UNSPECIFIED)
    row.first_line_no = line_no + 1
    row.requeue_at_ms = now_ms()
    row.save()
    log.warning(
        "run %s: %s; attempt %d %s", row.id, why, previous, "lost" if lost else "handed back"
    )
    return row.attempt


def _fail(row: Run, reason: str) -> None:
    _say(row, _next_line(row), reason)
    _end(row, RunStatus.FAILED, reason)


def _end(row: Run, status: RunStatus, reason: str) -> None:
    """Ends a run entities takes from its runner (lost, or handed back while stopping):
    the claim ends with it, so a late event of that runner is refused."""
    run_status.change(row, status, reason=reason)
    row.claim_key = ""
    row.lease_expires_ms = 0
    row.requeue_at_ms = 0
    row.save()
    log.warning("run %s: %s (%s)", row.id, status_name(status), reason)


def _next_line(row: Run) -> int:
    last = LogLine.select(fn.MAX(LogLine.line_no)).where(LogLine.run == row.id).scalar()
    return max(row.first_line_no, -1 if last is None else last + 1)


def _say(row: Run, line_no: int, text: str) -> None:
    LogLine.insert(
        run=row.id, line_no=line_no, text=system_text(text), stream=SYSTEM_STREAM
    ).on_conflict_ignore().execute()
