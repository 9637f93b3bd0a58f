"""The notification outbox (entities_svc/notifications.py): a run's end owes each
registered notifier one document, in the transaction that ends it."""

from __future__ import annotations

import json

from entities_svc import notifications, plugins, run_commands, run_start
from entities_svc.models import Notification, Run


def test_a_run_that_ends_owes_each_notifier_one_document(pipeline):
    plugins.put(plugins.NOTIFIERS, plugins.Plugin("chat", "http://127.0.0.1:9"))
    plugins.put(plugins.NOTIFIERS, plugins.Plugin("forge", "http://127.0.0.1:10"))
    run = run_start.create_run(*pipeline)
    assert notifications.due(2**62, 10) == []  # pending: nothing owed yet

    run_commands.stop_run(run.id)  # a pending run stops at once

    owed = notifications.due(2**62, 10)
    assert sorted((o.notifier, o.url, o.run_id) for o in owed) == [
        ("chat", "http://127.0.0.1:9", run.id),
        ("forge", "http://127.0.0.1:10", run.id),
    ]
    body = notifications.document(owed[0])
    assert body is not None
    assert (body["run_id"], body["status"], body["pipeline"]) == (
        run.id,
        "stopped",
        {"group": pipeline[0], "name": pipeline[1]},
    )
    assert body["id"] == f"n-{owed[0].id}" and body["completed_at"]


def test_a_held_notification_is_not_taken_twice_and_a_deleted_notifier_is_owed_nothing(pipeline):
    plugins.put(plugins.NOTIFIERS, plugins.Plugin("chat", "http://127.0.0.1:9"))
    run_commands.stop_run(run_start.create_run(*pipeline).id)
    (owed,) = notifications.due(2**62, 10)

    assert notifications.hold(owed, owed.due_at_ms + 30_000)
    assert not notifications.hold(owed, owed.due_at_ms + 30_000)  # another process

    plugins.delete(plugins.NOTIFIERS, "chat")
    assert Notification.select().count() == 0


def test_a_run_a_forge_event_started_is_notified_with_its_repository_and_commit(pipeline):
    plugins.put(plugins.NOTIFIERS, plugins.Plugin("forge", "http://127.0.0.1:10"))
    run = run_start.create_run(*pipeline)
    event = {"repository": "o/r", "kind": "push", "ref": "refs/heads/main", "target": "main"}
    origin = {
        "forge": "gitea",
        "delivery_id": "d-1",
        "event": {**event, "sha": "ab12", "sender": "u"},
    }
    Run.update(trigger=json.dumps(origin)).where(Run.id == run.id).execute()
    run_commands.stop_run(run.id)

    (owed,) = notifications.due(2**62, 10)
    body = notifications.document(owed)

    assert body is not None and body["trigger"] == {
        "forge": "gitea",
        "delivery": "d-1",
        **event,
        "sha": "ab12",
        "sender": "u",
    }
