"""Forge deliveries (POST /webhooks/{forge}): verified against the webhook secrets of the
triggers of their repository, here, where the secrets are (the API never holds their
values); then every pipeline whose verified trigger matches the event starts, pinned to
the event's commit, once per delivery id.

Exactly once: the delivery's key is the primary key of webhook_deliveries, inserted in
the transaction that records its runs. A redelivery finds it and is answered what the
first one started; a concurrent one (another entities process) fails on the key, its
transaction rolls back whole, and it is answered the same. Runs are recorded with their
jobs owed at once (outbox.py): the sweep, woken by the caller, publishes them, so the
forge's request never waits on the broker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from peewee import IntegrityError

from bob_common import runner_types, triggers
from bob_common.pipeline_rules import EXTERNAL
from entities_svc import run_start, trigger_index
from entities_svc.clock import now_ms
from entities_svc.errors import EntitiesError, FailedPrecondition
from entities_svc.models import Pipeline, Run, Secret, WebhookDelivery, database
from entities_svc.secret_box import SecretBox

log = logging.getLogger(__name__)

# Deliveries older than the retention pruned per delivery at most: the table stays
# bounded by the forge's own rate, and no delivery waits on a large delete.
PRUNE_BATCH = 100


@dataclass(frozen=True)
class Delivery:
    forge: str
    delivery_id: str
    body: bytes
    signature: str
    event: triggers.Event
    # Why the event starts nothing even when signed; "" otherwise.
    ignored: str = ""


@dataclass(frozen=True)
class Started:
    group: str
    name: str
    run_id: str


@dataclass(frozen=True)
class Skipped:
    group: str
    name: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    verified: bool
    runs: tuple[Started, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    reason: str = ""
    redelivery: bool = False


@dataclass
class _Secrets:
    """The webhook secrets opened for one delivery, by name (None: not usable)."""

    box: SecretBox
    opened: dict[str, str | None] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        if name not in self.opened:
            self.opened[name] = self._open(name)
        return self.opened[name]

    def _open(self, name: str) -> str | None:
        row = Secret.get_or_none(Secret.name == name)
        if row is None:
            log.warning("webhook secret %r of a trigger is not stored", name)
            return None
        try:
            return self.box.open(name, row.ciphertext)
        except FailedPrecondition as exc:  # no key, or one that does not open it
            log.warning("webhook secret %r cannot be read: %s", name, exc)
            return None


def signed_with(forge: str, secret: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is the forge's proof of `body` made with `secret`: GitLab's
    token is the secret itself, the others' the HMAC-SHA256 of the body, hex. Compared
    in constant time."""
    if forge == triggers.GITLAB:
        expected = secret.encode()
        given = signature.encode()
    else:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        given = signature.lower().encode()
    return hmac.compare_digest(expected, given)


def deliver(
    box: SecretBox,
    delivery: Delivery,
    keep_ms: int,
    allowed_by_default: tuple[str, ...] = (runner_types.DEFAULT,),
    secrets_readable: bool = True,
) -> Outcome:
    """Verifies the delivery and starts what it matches, once (see the module)."""
    event = delivery.event
    secrets = _Secrets(box)
    verified = [
        (row, trigger)
        for row, trigger in trigger_index.on_repository(event.repository)
        if (value := secrets.value(str(trigger.get("secret", "")))) is not None
        and signed_with(delivery.forge, value, delivery.body, delivery.signature)
    ]
    if not verified:
        log.warning(
            "%s delivery %s about %s: no trigger's webhook secret verifies its signature",
            delivery.forge,
            delivery.delivery_id,
            event.repository,
        )
        return Outcome(verified=False)
    if delivery.ignored:
        return Outcome(verified=True, reason=delivery.ignored)
    key = f"{delivery.forge}:{delivery.delivery_id}"
    try:
        with database.atomic():
            now = now_ms()
            _prune(now - keep_ms)
            seen = WebhookDelivery.get_or_none(WebhookDelivery.key == key)
            if seen is not None:
                return _again(seen)
            WebhookDelivery.create(key=key, received_at_ms=now)
            outcome = _start(delivery, verified, now, allowed_by_default, secrets_readable)
            WebhookDelivery.update(answer=json.dumps(asdict(outcome))).where(
                WebhookDelivery.key == key
            ).execute()
    except IntegrityError:
        # Another process recorded the same delivery first; ours left nothing behind.
        return _again(WebhookDelivery.get(WebhookDelivery.key == key))
    log.info(
        "%s delivery %s: %s %s of %s started %d run(s)",
        delivery.forge,
        delivery.delivery_id,
        event.kind,
        event.ref,
        event.repository,
        len(outcome.runs),
    )
    return outcome


def _again(seen: WebhookDelivery) -> Outcome:
    answer = json.loads(seen.answer)
    return Outcome(
        verified=True,
        runs=tuple(Started(**r) for r in answer["runs"]),
        skipped=tuple(Skipped(**s) for s in answer["skipped"]),
        reason=answer["reason"],
        redelivery=True,
    )


def _prune(before_ms: int) -> None:
    oldest = (
        WebhookDelivery.select(WebhookDelivery.key)
        .where(WebhookDelivery.received_at_ms < before_ms)
        .limit(PRUNE_BATCH)
    )
    WebhookDelivery.delete().where(WebhookDelivery.key.in_(oldest)).execute()


def _start(
    delivery: Delivery,
    verified: list[tuple[Pipeline, Mapping[str, Any]]],
    now: int,
    allowed_by_default: tuple[str, ...],
    secrets_readable: bool,
) -> Outcome:
    event = delivery.event
    matching: dict[int, tuple[Pipeline, Mapping[str, Any]]] = {}
    for row, trigger in verified:
        if triggers.matches(trigger, event.kind, event.target) and row.id not in matching:
            matching[row.id] = (row, trigger)  # one run per pipeline, by its first trigger
    if not matching:
        return Outcome(verified=True, reason=no_match(event))
    origin = json.dumps(
        {"forge": delivery.forge, "delivery_id": delivery.delivery_id, "event": asdict(event)}
    )
    started, skipped = [], []
    for row, trigger in matching.values():
        try:
            with database.atomic():  # a savepoint: a refused start leaves nothing
                info = run_start.create_run(
                    row.group, row.name, "", "", allowed_by_default, secrets_readable
                )
                assert info.pipeline is not None
                snapshot = pinned(info.pipeline, trigger, event.sha)
                # Due at once: the sweep publishes it (outbox.py), woken by the caller.
                Run.update(
                    pipeline=json.dumps(snapshot, sort_keys=True), trigger=origin, requeue_at_ms=now
                ).where(Run.id == info.id).execute()
        except EntitiesError as exc:
            skipped.append(Skipped(row.group, row.name, str(exc)))
        else:
            started.append(Started(row.group, row.name, info.id))
    reason = "" if started else "every matching pipeline refused the start"
    return Outcome(verified=True, runs=tuple(started), skipped=tuple(skipped), reason=reason)


def no_match(event: triggers.Event) -> str:
    if event.kind == triggers.PULL_REQUEST:
        what = f"pull_request into {event.target} ({event.ref})"
    else:
        what = f"{event.kind} to {event.ref}"
    return f"no pipeline triggers on {what} of {event.repository}"


def pinned(definition: Mapping[str, Any], trigger: Mapping[str, Any], sha: str) -> dict[str, Any]:
    """The definition with the `ref` of the trigger's resource set to the commit."""
    resources = [dict(r) for r in definition.get("resources") or ()]
    external = [r.get("name", "") for r in resources if r.get("type") == EXTERNAL]
    target = triggers.pinned_resource(trigger, external)
    for resource in resources:
        if target and resource.get("name") == target:
            resource["params"] = {**(resource.get("params") or {}), "ref": sha}
    return {**definition, "resources": resources}
