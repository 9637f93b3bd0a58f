"""The secret store: values written by admins, sealed with the operator's key
(secret_box.py), never read back through any API; only the runner holding a run's claim
gets the values its pipeline references (run_secrets)."""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bob_common import claim_proof, pipeline_rules
from bob_common.run_states import CLAIMED
from entities_svc import journal
from entities_svc.clock import now_ms
from entities_svc.errors import FailedPrecondition, Forbidden, Invalid, NotFound
from entities_svc.models import Run, Secret, database
from entities_svc.secret_box import SecretBox, Undecryptable

log = logging.getLogger(__name__)

KIND = "Secret"
# The longest value: a private key or a kubeconfig fits, a file does not.
MAX_VALUE_BYTES = 64 * 1024
_CLAIMED = [int(s) for s in CLAIMED]


@dataclass(frozen=True)
class SecretInfo:
    name: str
    created_at_ms: int
    updated_at_ms: int


def _check_name(name: str) -> None:
    if not re.fullmatch(pipeline_rules.SECRET_NAME, name):
        raise Invalid(
            f"Secret name {name!r} must be letters, digits, '.', '_' and '-', at most 128, "
            "not starting with '.'"
        )


def _check_value(value: str) -> None:
    if not value:
        raise Invalid("A secret's value must not be empty")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise Invalid(f"A secret's value must be at most {MAX_VALUE_BYTES} bytes")
    if "\0" in value:
        # It becomes an environment variable's value, which cannot hold one.
        raise Invalid("A secret's value must not contain a NUL character")


def put_secret(box: SecretBox, name: str, value: str) -> bool:
    """Stores the secret or replaces its value; True when it was created."""
    _check_name(name)
    _check_value(value)
    sealed = box.seal(name, value)
    now = now_ms()
    with database.atomic():
        updated = (
            Secret.update(ciphertext=sealed, updated_at_ms=now).where(Secret.name == name).execute()
        )
        if not updated:
            Secret.create(name=name, ciphertext=sealed, created_at_ms=now, updated_at_ms=now)
        what = "updated" if updated else "created"
        journal.append(KIND, f"Secret{what.title()}", f"Secret {name} {what}")
    log.info("%s secret %s", what, name)
    return not updated


def list_secrets() -> list[SecretInfo]:
    query = Secret.select(Secret.name, Secret.created_at_ms, Secret.updated_at_ms)
    return [
        SecretInfo(row.name, row.created_at_ms, row.updated_at_ms)
        for row in query.order_by(Secret.name)
    ]


def delete_secret(name: str) -> None:
    with database.atomic():
        if not Secret.delete().where(Secret.name == name).execute():
            raise NotFound(f"Secret {name} not found")
        journal.append(KIND, "SecretDeleted", f"Secret {name} deleted")
    log.info("deleted secret %s", name)


def _stored(names: Iterable[str]) -> dict[str, Secret]:
    wanted = set(names)
    if not wanted:
        return {}
    return {row.name: row for row in Secret.select().where(Secret.name.in_(wanted))}


def missing(definition: dict[str, Any], readable: bool) -> list[str]:
    """Why a run of this definition could not get its secrets, one sentence each: a
    referenced secret that is not stored, or no key to read any."""
    uses = pipeline_rules.secret_uses(definition)
    if not uses:
        return []
    if not readable:
        return ["Secrets cannot be read: entities has no key (BOB_SECRETS_KEY_FILE)"]
    found = _stored(secret for secret, _ in uses)
    return [
        f"Secret {secret!r} of {what} is not stored" for secret, what in uses if secret not in found
    ]


def run_secrets(
    box: SecretBox, run_id: str, attempt: int, runner_id: str, proof: str
) -> dict[str, str]:
    """The values of the secrets the run's snapshot references, by secret name, for the
    runner that holds its claim and proves it with the claim's secret: Forbidden for any
    other caller, whether the run exists or not (an unknown run says nothing more than a
    foreign one)."""
    row = Run.get_or_none(Run.id == run_id)
    if (
        row is None
        or not runner_id
        or row.runner_id != runner_id
        or row.attempt != attempt
        or row.status not in _CLAIMED
        or not _proven(row.claim_key, run_id, attempt, proof)
    ):
        raise Forbidden(
            f"Runner {runner_id!r} does not hold the claim of run {run_id} attempt {attempt}"
        )
    uses = pipeline_rules.secret_uses(json.loads(row.pipeline))
    found = _stored(secret for secret, _ in uses)
    if gone := [f"{s!r} of {what}" for s, what in uses if s not in found]:
        raise FailedPrecondition(f"Secret {'; '.join(gone)} is not stored (any more)")
    values = {name: box.open(name, found[name].ciphertext) for name, _ in uses}
    log.info("run %s: %d secret(s) handed to runner %s", run_id, len(values), runner_id)
    return values


def _proven(claim_key: str, run_id: str, attempt: int, proof: str) -> bool:
    if not claim_key or not proof:
        return False
    expected = claim_proof.secrets_proof(bytes.fromhex(claim_key), run_id, attempt)
    return hmac.compare_digest(expected, proof)


def reencrypt(box: SecretBox) -> int:
    """Seals every value not sealed with the first key again with it (after a key rotation),
    in one transaction; how many. A value that no key opens is left as it is and named in
    the log: runs that need it fail saying so until an admin sets it again."""
    if box.keys < 2:
        return 0
    changed = 0
    with database.atomic():
        for row in Secret.select():
            if box.sealed_with_first(row.ciphertext):
                continue
            try:
                box.open(row.name, row.ciphertext)
            except Undecryptable as exc:
                log.error("%s; set it again (PUT /secrets/%s)", exc, row.name)
                continue
            Secret.update(ciphertext=box.rotate(row.ciphertext)).where(
                Secret.name == row.name
            ).execute()
            changed += 1
    if changed:
        log.info("re-encrypted %d secret(s) with the first key", changed)
    return changed
