"""Deliveries in entities' domain, on a fresh database: verified against the triggers'
secrets, matched, started pinned to the commit and recorded once per delivery id, also
when another process recorded it first; old ids pruned."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from peewee import Database

from bob_common import triggers
from entities_svc import pipelines, plugins, secrets, webhooks
from entities_svc.clock import now_ms
from entities_svc.db import close_database, open_database
from entities_svc.models import PipelineTrigger, Run, WebhookDelivery
from entities_svc.secret_box import SecretBox
from tests.triggers.deliveries import hmac_hex

SHA = "4f1c2a9d3e5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
KEEP_MS = 60_000
BOX = SecretBox([Fernet.generate_key().decode()])


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    secrets.put_secret(BOX, "hook", "s3cret-hook")
    secrets.put_secret(BOX, "other-hook", "another")
    plugins.put(plugins.PROVIDERS, plugins.Plugin("git", "http://127.0.0.1:8001"))
    yield database
    close_database(database)


def _pipeline(*trigger_list: dict) -> dict:
    return {
        "image": "busybox",
        "steps": [{"cmd": "true", "needs_resource": "source"}],
        "resources": [
            {
                "name": "source",
                "type": "external",
                "provider": "git",
                "params": {"repo": "/srv/app", "ref": "main"},
            }
        ],
        "triggers": list(trigger_list),
    }


def _delivery(
    body: bytes = b'{"push": 1}',
    secret: str = "s3cret-hook",
    delivery_id: str = "d-1",
    forge: str = "github",
    target: str = "main",
    repository: str = "acme/app",
) -> webhooks.Delivery:
    signature = secret if forge == "gitlab" else hmac_hex(secret, body)
    event = triggers.Event(repository, "push", f"refs/heads/{target}", target, SHA, "alice")
    return webhooks.Delivery(forge, delivery_id, body, signature, event)


def _deliver(delivery: webhooks.Delivery) -> webhooks.Outcome:
    return webhooks.deliver(BOX, delivery, KEEP_MS)


def _runs() -> list[Run]:
    return list(Run.select().order_by(Run.number))


def test_a_signed_push_starts_each_matching_pipeline_pinned_to_its_commit(database):
    # Given pipelines triggered by pushes to main of acme/app, to other branches, and by
    # a trigger whose secret is another one
    hook = {"repository": "acme/app", "secret": "hook"}
    pipelines.put_pipeline("dev", "main", _pipeline(hook | {"branches": ["main"]}))
    pipelines.put_pipeline("dev", "release", _pipeline(hook | {"branches": ["release/*"]}))
    pipelines.put_pipeline("dev", "foreign", _pipeline(hook | {"secret": "other-hook"}))

    # When a push to main signed with the hook's secret is delivered
    outcome = _deliver(_delivery())

    # Then the main pipeline alone runs, at the pushed commit, with its trigger recorded,
    # and its job is due at once
    assert outcome.verified and not outcome.redelivery
    assert [(r.group, r.name) for r in outcome.runs] == [("dev", "main")]
    (run,) = _runs()
    assert run.id == outcome.runs[0].run_id
    assert json.loads(run.pipeline)["resources"][0]["params"] == {"repo": "/srv/app", "ref": SHA}
    trigger = json.loads(run.trigger)
    assert trigger["event"]["sha"] == SHA and trigger["event"]["sender"] == "alice"
    assert trigger["forge"] == "github" and trigger["delivery_id"] == "d-1"
    assert 0 < run.requeue_at_ms <= now_ms()


def test_a_signature_no_trigger_secret_verifies_starts_and_records_nothing(database):
    pipelines.put_pipeline("dev", "main", _pipeline({"repository": "acme/app", "secret": "hook"}))
    for delivery in (
        _delivery(secret="guessed"),
        _delivery(repository="acme/unknown"),
        _delivery(forge="gitlab", secret="not-the-token"),
    ):
        assert _deliver(delivery) == webhooks.Outcome(verified=False)
    assert _runs() == [] and WebhookDelivery.select().count() == 0
    # GitLab's token is the secret itself
    assert _deliver(_delivery(forge="gitlab")).runs


def test_a_redelivery_answers_the_first_deliverys_runs_and_starts_nothing(database):
    pipelines.put_pipeline("dev", "main", _pipeline({"repository": "acme/app", "secret": "hook"}))
    first = _deliver(_delivery())
    again = _deliver(_delivery())
    assert again.redelivery and again.runs == first.runs
    assert len(_runs()) == 1
    # Another delivery id is another delivery
    assert _deliver(_delivery(delivery_id="d-2")).runs != first.runs
    assert len(_runs()) == 2


def test_a_delivery_recorded_meanwhile_by_another_process_rolls_back_whole(database, monkeypatch):
    # Given a delivery recorded by another entities process after this one looked
    pipelines.put_pipeline("dev", "main", _pipeline({"repository": "acme/app", "secret": "hook"}))
    first = _deliver(_delivery())
    monkeypatch.setattr(WebhookDelivery, "get_or_none", classmethod(lambda cls, *a: None))

    # When the same delivery is handled: its insert hits the unique key
    again = _deliver(_delivery())

    # Then its runs were rolled back with it, and it is answered the first one's
    assert again.redelivery and again.runs == first.runs
    assert len(_runs()) == 1


def test_no_matching_trigger_answers_the_reason_and_a_paused_pipeline_is_skipped(database):
    hook = {"repository": "acme/app", "secret": "hook", "branches": ["main"]}
    pipelines.put_pipeline("dev", "main", _pipeline(hook))
    outcome = _deliver(_delivery(target="wip"))
    assert outcome.verified and not outcome.runs
    assert outcome.reason == "no pipeline triggers on push to refs/heads/wip of acme/app"

    pipelines.set_paused("dev", "main", True)
    outcome = _deliver(_delivery(delivery_id="d-2"))
    assert not outcome.runs
    assert outcome.skipped == (
        webhooks.Skipped("dev", "main", "Pipeline is paused. Unpause it first."),
    )


def test_delivery_ids_older_than_the_retention_are_pruned(database):
    pipelines.put_pipeline("dev", "main", _pipeline({"repository": "acme/app", "secret": "hook"}))
    _deliver(_delivery(delivery_id="old"))
    WebhookDelivery.update(received_at_ms=now_ms() - KEEP_MS - 1).execute()
    _deliver(_delivery(delivery_id="new"))
    assert [d.key for d in WebhookDelivery.select()] == ["github:new"]


def test_triggers_are_reindexed_with_the_definition_and_go_with_the_pipeline(database):
    pipelines.put_pipeline("dev", "main", _pipeline({"repository": "Acme/App", "secret": "hook"}))
    assert [t.repository for t in PipelineTrigger.select()] == ["acme/app"]
    pipelines.put_pipeline("dev", "main", _pipeline({"repository": "acme/lib", "secret": "hook"}))
    assert [t.repository for t in PipelineTrigger.select()] == ["acme/lib"]
    pipelines.delete_pipeline("dev", "main")
    assert PipelineTrigger.select().count() == 0
