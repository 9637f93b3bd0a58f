"""API tokens: made here, stored as their SHA-256 (bob_common/api_tokens.py says why that
hash), listed without secrets, revoked, and looked up by hash for the API's checks."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass

from bob_common import api_tokens, roles
from bob_common.roles import Role
from entities_svc import journal
from entities_svc.clock import now_ms
from entities_svc.errors import AlreadyExists, Invalid, NotFound, Unauthenticated
from entities_svc.models import ApiToken, database

log = logging.getLogger(__name__)

NAME_MAX = 128
# Ten years: a longer expiry is a mistake for "never" (0).
EXPIRES_IN_MAX_S = 10 * 365 * 24 * 3600
KIND = "Token"
# C0, DEL and C1: a name is shown in lists and logs, where they would garble the line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    role: Role
    created_at_ms: int
    # 0 when it never expires, and while it is not revoked.
    expires_at_ms: int
    revoked_at_ms: int


@dataclass(frozen=True)
class Created:
    token: Token
    # The token itself: told to the caller once, stored nowhere.
    secret: str


def _token(row: ApiToken) -> Token:
    return Token(
        row.id,
        row.name,
        Role(row.role),
        row.created_at_ms,
        row.expires_at_ms,
        row.revoked_at_ms,
    )


def _live(at_ms: int):
    """The peewee condition of tokens neither revoked nor expired at `at_ms`."""
    return (ApiToken.revoked_at_ms == 0) & (
        (ApiToken.expires_at_ms == 0) | (ApiToken.expires_at_ms > at_ms)
    )


def _check(name: str, role: int, expires_in_s: int) -> Role:
    if not name or len(name) > NAME_MAX or _CONTROL.search(name):
        raise Invalid(f"Token name must be 1 to {NAME_MAX} characters, none a control character")
    if role not in set(Role):
        raise Invalid(f"Token role must be one of {', '.join(roles.NAMES)}")
    if not 0 <= expires_in_s <= EXPIRES_IN_MAX_S:
        raise Invalid(f"Token expiry must be 0 (never) to {EXPIRES_IN_MAX_S} seconds from now")
    return Role(role)


def create(
    name: str, role: int, expires_in_s: int = 0, *, unless_admin_exists: bool = False
) -> Created | None:
    """A new token; with unless_admin_exists, None when a live admin token exists (checked
    in the same transaction, so two bootstraps at once make one token)."""
    checked = _check(name, role, expires_in_s)
    at_ms = now_ms()
    secret = api_tokens.new_secret()
    with database.atomic():
        live = ApiToken.select().where(_live(at_ms))
        if unless_admin_exists and live.where(ApiToken.role == Role.ADMIN).exists():
            return None
        if live.where(ApiToken.name == name).exists():
            raise AlreadyExists(f"A live token is already named {name!r}; revoke it first")
        row = ApiToken.create(
            id="tok_" + secrets.token_hex(6),
            name=name,
            role=int(checked),
            token_hash=api_tokens.hash_secret(secret),
            created_at_ms=at_ms,
            expires_at_ms=at_ms + expires_in_s * 1000 if expires_in_s else 0,
        )
        journal.append(KIND, "TokenCreated", f"Token {name} ({checked.label}) created")
    log.info("created token %s %s (%s)", row.id, name, checked.label)
    return Created(_token(row), secret)


def list_all() -> list[Token]:
    return [_token(row) for row in ApiToken.select().order_by(ApiToken.created_at_ms)]


def revoke(token_id: str) -> Token:
    with database.atomic():
        row = ApiToken.get_or_none(ApiToken.id == token_id)
        if row is None:
            raise NotFound(f"Token {token_id} not found")
        if not row.revoked_at_ms:
            row.revoked_at_ms = now_ms()
            row.save()
            journal.append(KIND, "TokenRevoked", f"Token {row.name} revoked")
            log.info("revoked token %s %s", row.id, row.name)
    return _token(row)


def verify(token_hash: str) -> Token:
    """The live token with that hash; Unauthenticated saying why when there is none."""
    row = ApiToken.get_or_none(ApiToken.token_hash == token_hash)
    if row is None:
        raise Unauthenticated("Unknown token")
    if row.revoked_at_ms:
        raise Unauthenticated(f"Token {row.name} was revoked")
    if row.expires_at_ms and row.expires_at_ms <= now_ms():
        raise Unauthenticated(f"Token {row.name} has expired")
    return _token(row)
