"""Run notifications (issue 11): the outbox of what notifiers are owed.

When a run ends (passed, failed or stopped), run_status.entered() calls owe() in the
transaction that ends it: one Notification row per registered notifier, so a notification
is owed exactly when the end is committed, and the run's end never waits for a notifier.
notifier.py delivers them: at least once, retried with backoff until the notifier answers
2xx or BOB_NOTIFY_GIVE_UP_S has passed. Every notifier receives every run's end (a
notifier filters what it does not want); a notifier deleted takes what it was owed with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bob_common.run_states import status_name
from entities_svc.models import Notification, Notifier, Run

# The path a notifier is POSTed at, under its URL.
PATH = "/bob_notification"
# Stored error texts are cut to this length.
ERROR_MAX = 500


@dataclass(frozen=True)
class Owed:
    id: int
    run_id: str
    notifier: str
    url: str
    attempts: int
    created_at_ms: int
    due_at_ms: int


def owe(run_id: str, at_ms: int) -> int:
    """The run has ended: one notification per registered notifier, due now; how many.
    Call it in the transaction that ends the run."""
    names = [name for (name,) in Notifier.select(Notifier.name).tuples()]
    if names:
        Notification.insert_many(
            [
                {"run_id": run_id, "notifier": n, "created_at_ms": at_ms, "due_at_ms": at_ms}
                for n in names
            ]
        ).execute()
    return len(names)


def due(now_ms: int, limit: int) -> list[Owed]:
    """Notifications due, earliest first, with their notifier's URL."""
    query = (
        Notification.select(
            Notification.id,
            Notification.run_id,
            Notification.notifier,
            Notifier.url,
            Notification.attempts,
            Notification.created_at_ms,
            Notification.due_at_ms,
        )
        .join(Notifier, on=(Notification.notifier == Notifier.name))
        .where(Notification.due_at_ms <= now_ms)
        .order_by(Notification.due_at_ms)
        .limit(limit)
        .tuples()
    )
    return [Owed(*row) for row in query]


def hold(owed: Owed, until_ms: int) -> bool:
    """Takes the notification for one delivery: a compare-and-set on its due time, pushed
    to until_ms, so that another entities process does not send it meanwhile; False when
    someone else took (or finished) it."""
    return bool(
        Notification.update(due_at_ms=until_ms)
        .where((Notification.id == owed.id) & (Notification.due_at_ms == owed.due_at_ms))
        .execute()
    )


def delivered(notification_id: int) -> None:
    Notification.delete().where(Notification.id == notification_id).execute()


def failed(notification_id: int, error: str, next_due_ms: int) -> None:
    """One delivery failed: tried again at next_due_ms."""
    Notification.update(
        attempts=Notification.attempts + 1,
        last_error=error[:ERROR_MAX],
        due_at_ms=next_due_ms,
    ).where(Notification.id == notification_id).execute()


def forget_notifier(name: str) -> None:
    """A notifier deleted: what it was owed goes (call in the deleting transaction)."""
    Notification.delete().where(Notification.notifier == name).execute()


def _iso(ms: int) -> str | None:
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds") if ms else None
    )


def document(owed: Owed) -> dict[str, Any] | None:
    """What the notifier is POSTed: the run as it ended, with what started it (a schedule's
    tick, a forge event's repository and commit); None when the run is gone (its
    pipeline was deleted), and the notification with it. `id` stays the same across
    retries, so a notifier may drop a document it has already had."""
    run = Run.get_or_none(Run.id == owed.run_id)
    if run is None:
        return None
    body: dict[str, Any] = {
        "id": f"n-{owed.id}",
        "event": "run-ended",
        "pipeline": {"group": run.group, "name": run.name},
        "run_id": run.id,
        "status": status_name(run.status),
        "reason": run.reason,
        "attempt": run.attempt,
        "runner_type": run.runner_type,
        "runner_id": run.runner_id,
        "created_at": _iso(run.created_at_ms),
        "started_at": _iso(run.started_at_ms),
        "completed_at": _iso(run.completed_at_ms),
    }
    if run.schedule_cron:
        body["schedule"] = {
            "cron": run.schedule_cron,
            "timezone": run.schedule_timezone,
            "tick": _iso(run.schedule_tick_ms),
        }
    if run.trigger:  # a forge event started it (webhooks.py): its repository and commit
        origin = json.loads(run.trigger)
        event = origin.get("event") or {}
        body["trigger"] = {
            "forge": origin.get("forge", ""),
            "delivery": origin.get("delivery_id", ""),
            **{k: event.get(k, "") for k in ("repository", "kind", "ref", "target", "sha")},
            "sender": event.get("sender", ""),
        }
    return body
