"""Changing a run on request: the runner's claim (a compare-and-set), a stop, and a pause
or resume. Starting a run is run_start.py's; what the runner reports, progress.py's; what
a lease decides, leases.py's."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bob_common import claim_proof
from bob_common.run_states import CLAIMED, TERMINAL, Order, RunStatus, status_name
from entities_svc import compiled, run_status
from entities_svc.clock import now_ms
from entities_svc.errors import FailedPrecondition, Invalid
from entities_svc.models import Run, database
from entities_svc.run_queries import RunInfo, find_row, get_run

log = logging.getLogger(__name__)

STOPPED_BEFORE_START = "stopped before a runner picked it up"


@dataclass(frozen=True)
class Claim:
    claimed: bool
    # Why the claim was refused; empty when it succeeded.
    reason: str
    status: RunStatus
    # The claim's secret, which keys the MAC of the attempt's events; empty when refused.
    secret: bytes = field(default=b"", repr=False, compare=False)


def claim_run(run_id: str, attempt: int, runner_id: str, lease_ms: int) -> Claim:
    """The runner's compare-and-set before it executes a job: only a PENDING run of the
    same attempt becomes INITIALIZING and owned by `runner_id`, for a lease of lease_ms.
    The winner gets a new secret: only events signed with it are applied (claim_proof.py)."""
    if not runner_id:
        raise Invalid("runner_id must not be empty")
    # One conditional UPDATE: the database decides between concurrent claimers, and the
    # row count says who won, whatever the isolation level or number of processes.
    now = now_ms()
    secret = claim_proof.new_secret()
    with database.atomic():
        values = (
            int(RunStatus.INITIALIZING),
            runner_id,
            now + lease_ms,
            # A job claimed was queued, whether or not its confirm was recorded.
            0,
            secret.hex(),
            run_id,
            int(RunStatus.PENDING),
            attempt,
        )
        won = database.rows_affected(compiled.execute("claim", _claim, values))
        if won:
            _entered(run_id, RunStatus.PENDING, at_ms=now)
    if won:
        log.info("run %s attempt %d claimed by %s", run_id, attempt, runner_id)
        return Claim(True, "", RunStatus.INITIALIZING, secret)
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


def _claim(m: list[int]) -> object:
    """claim_run's compare-and-set: the new status, runner, lease end, requeue time and
    claim key, of the run with this id, status and attempt."""
    return Run.update(
        status=m[0],
        runner_id=m[1],
        lease_expires_ms=m[2],
        requeue_at_ms=m[3],
        claim_key=m[4],
    ).where((Run.id == m[5]) & (Run.status == m[6]) & (Run.attempt == m[7]))


def _entered(run_id: str, old: RunStatus, at_ms: int) -> None:
    """After a compare-and-set UPDATE changed the run's status: its stamps and journal."""
    row = find_row(run_id)
    run_status.entered(row, old, at_ms=at_ms)
    compiled.save_dirty(row)


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
