"""API tokens in entities' domain (entities_svc/tokens.py), on a fresh SQLite database."""

from __future__ import annotations

import hashlib
import time

import pytest

from bob_common.roles import Role
from entities_svc import journal, tokens
from entities_svc.errors import AlreadyExists, Invalid, NotFound, Unauthenticated
from entities_svc.models import ApiToken


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def test_a_token_is_stored_as_its_sha256_and_verified_by_it(database):
    made = tokens.create("ci", Role.OPERATE)
    assert made is not None and made.secret.startswith("bob_") and len(made.secret) >= 40
    [row] = ApiToken.select()
    assert row.token_hash == _hash(made.secret)
    assert made.secret not in {str(v) for v in row.__data__.values()}
    assert tokens.verify(_hash(made.secret)) == made.token
    assert made.token.role == Role.OPERATE and made.token.expires_at_ms == 0
    assert [e.reason for e in journal.read_after(0, 10)] == ["TokenCreated"]


def test_unknown_expired_and_revoked_tokens_are_refused_saying_which(database):
    with pytest.raises(Unauthenticated, match="Unknown token"):
        tokens.verify(_hash("bob_nothing"))
    soon = tokens.create("soon", Role.READ, 1)
    assert soon is not None
    assert tokens.verify(_hash(soon.secret)).name == "soon"
    time.sleep(1.05)
    with pytest.raises(Unauthenticated, match="Token soon has expired"):
        tokens.verify(_hash(soon.secret))
    gone = tokens.create("gone", Role.ADMIN)
    assert gone is not None
    revoked = tokens.revoke(gone.token.id)
    assert revoked.revoked_at_ms > 0 and tokens.revoke(gone.token.id) == revoked
    with pytest.raises(Unauthenticated, match="Token gone was revoked"):
        tokens.verify(_hash(gone.secret))
    with pytest.raises(NotFound):
        tokens.revoke("tok_000000000000")


def test_the_bootstrap_makes_an_admin_token_only_while_no_live_one_exists(database):
    assert tokens.create("reader", Role.READ, unless_admin_exists=True) is not None
    first = tokens.create("bootstrap-admin", Role.ADMIN, unless_admin_exists=True)
    assert first is not None
    assert tokens.create("bootstrap-admin", Role.ADMIN, unless_admin_exists=True) is None
    # Once no admin token is live, the way back in
    tokens.revoke(first.token.id)
    again = tokens.create("bootstrap-admin", Role.ADMIN, unless_admin_exists=True)
    assert again is not None and again.secret != first.secret


def test_a_live_name_is_unique_and_bad_requests_are_invalid(database):
    made = tokens.create("ci", Role.READ)
    assert made is not None
    with pytest.raises(AlreadyExists, match="'ci'"):
        tokens.create("ci", Role.ADMIN)
    tokens.revoke(made.token.id)
    assert tokens.create("ci", Role.ADMIN) is not None  # rotated under the same name
    for name, role, expires in (("", 1, 0), ("x\n", 1, 0), ("x", 0, 0), ("x", 9, 0), ("x", 1, -1)):
        with pytest.raises(Invalid):
            tokens.create(name, role, expires)
    listed = tokens.list_all()
    assert [t.name for t in listed] == ["ci", "ci"]
    assert [bool(t.revoked_at_ms) for t in listed] == [True, False]
