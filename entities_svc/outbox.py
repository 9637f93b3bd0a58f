"""Which PENDING runs still need their job queued.

A run is recorded before its job is published, so the two can part: entities may die
between them, a retried attempt needs a new job, a dead-lettered job needs another. A
PENDING run with `requeue_at_ms` set has no confirmed job for its current attempt; from
that time on the sweep publishes one. Publishing twice is harmless (the claim is a
compare-and-set); never publishing would leave the run pending forever.
"""

from __future__ import annotations

from collections import defaultdict

from entities_svc import runs
from entities_svc.clock import now_ms
from entities_svc.lifecycle import RunStatus
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


def due(limit: int) -> list[runs.RunInfo]:
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
    return [runs.to_domain(row, with_pipeline=True) for row in query]
