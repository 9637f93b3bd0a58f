"""What entities still owes the broker: the jobs of PENDING runs, and the controls (stop,
pause, resume) of claimed runs.

A run is recorded before its job is published, so the two can part: entities may die
between them, a retried attempt needs a new job, a dead-lettered job needs another. A
PENDING run with `requeue_at_ms` set has no confirmed job for its current attempt; from
that time on the sweep publishes one. Publishing twice is harmless (the claim is a
compare-and-set); never publishing would leave the run pending forever.

Likewise a stop or pause is recorded (`desired`, and `control_owed` in the same
transaction) before its control is broadcast; the control stays owed until the broker has
confirmed it. Broadcasting twice is harmless (the runner's commands are idempotent), and
one never broadcast still reaches the runner through its lease renewal, only later.
"""

from __future__ import annotations

from collections import defaultdict

from bob_common.run_states import CLAIMED, Order, RunStatus
from entities_svc import run_queries
from entities_svc.clock import now_ms
from entities_svc.models import Run, database


def mark_queued(confirmed: list[tuple[str, int]]) -> None:
    """The broker confirmed the job of each (run_id, attempt)."""
    by_attempt: dict[int, list[str]] = defaultdict(list)
    for run_id, attempt in confirmed:
        by_attempt[attempt].append(run_id)
    with database.atomic():
        for attempt, run_ids in by_attempt.items():
            Run.update(requeue_at_ms=0).where(
                Run.id.in_(run_ids)
                & (Run.attempt == attempt)
                & (Run.status == int(RunStatus.PENDING))
            ).execute()


def due(limit: int) -> list[run_queries.RunInfo]:
    """PENDING runs whose job is due to be (re)published, oldest due first, with their
    pipeline snapshot."""
    query = (
        Run.select()
        .where(
            (Run.status == int(RunStatus.PENDING))
            & (Run.requeue_at_ms > 0)
            & (Run.requeue_at_ms <= now_ms())
        )
        .order_by(Run.requeue_at_ms)
        .limit(limit)
    )
    return [run_queries.to_domain(row, with_pipeline=True) for row in query]


def controls_due(limit: int) -> list[tuple[str, Order]]:
    """(run_id, order) of the claimed runs whose control is owed to the fanout."""
    query = (
        Run.select(Run.id, Run.control_owed)
        .where(Run.status.in_([int(s) for s in CLAIMED]) & (Run.control_owed != 0))
        .limit(limit)
        .tuples()
    )
    return [(run_id, Order(order)) for run_id, order in query]


def mark_controls_sent(confirmed: list[tuple[str, Order]]) -> None:
    """The broker confirmed each (run_id, order); an order recorded since stays owed."""
    with database.atomic():
        for run_id, order in confirmed:
            Run.update(control_owed=0).where(
                (Run.id == run_id) & (Run.control_owed == int(order))
            ).execute()
