"""Every request's token, checked before anything answers it (right after guard.py's
Host/Origin/JSON check, in front of the body limit and of the in-memory status answer).

A token comes as `Authorization: Bearer <token>`, or as the password of HTTP Basic with
any user name: Go's HTTP client sends a URL's user-info (`http://token:SECRET@bob:7777`)
that way, and it is all wendy and the Terraform provider can send. (A Basic user name
that is itself a token, with no password, is taken too.)

The role a request needs comes from the document (operation_roles.py). Without a token,
BOB_API_AUTH=tokens answers 401 and BOB_API_AUTH=none lets it through as if it were
admin; a token that is presented is checked in both modes, so that clients can be tried
against a loopback API: unknown, expired or revoked gets 401, a role too low 403. Each
answer names what is missing, in Bob's {"message": ...} envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import asdict

from api_server.asgi import App, Receive, Scope, Send, send_json
from api_server.operation_roles import OperationRoles
from api_server.problems import ApiError
from api_server.token_verifier import Holder, Refused, TokenVerifier
from bob_common import api_tokens
from bob_common.config import AUTH_NONE
from bob_common.roles import Role, allows

log = logging.getLogger(__name__)

# Where the holder of the request's token is put in the request's state (absent: no
# token, and none needed); connexion's security check and the handlers read it.
HOLDER = "token_holder"
VERIFIER = "token_verifier"

HOW = (
    "send Authorization: Bearer <token>, or the token as the password of HTTP Basic "
    "(a URL such as http://token:<token>@host:7777)"
)
_CHALLENGE = [
    (b"www-authenticate", b'Bearer realm="bob"'),
    (b"www-authenticate", b'Basic realm="bob", charset="UTF-8"'),
]
_INVALID = [
    (b"www-authenticate", b'Bearer realm="bob", error="invalid_token"'),
    (b"www-authenticate", b'Basic realm="bob", charset="UTF-8"'),
]


class BadCredentials(Exception):
    """The Authorization header is there but holds no token; the message says why."""


def presented_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token a request carries; None when it has no Authorization header."""
    value = None
    for name, raw in headers:
        if name.lower() == b"authorization":
            if value is not None:
                raise BadCredentials("More than one Authorization header")
            value = raw
    if value is None:
        return None
    scheme, _, rest = value.decode("latin-1").strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer":
        if not rest:
            raise BadCredentials("The Bearer authorization carries no token")
        return rest
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadCredentials("The Basic authorization is not base64 of user:password") from None
        user, colon, password = decoded.partition(":")
        if password:
            return password
        if api_tokens.looks_like_token(user):
            return user
        what = "no password" if colon else "no ':' between user and password"
        raise BadCredentials(f"The Basic authorization has {what}: the token is the password")
    raise BadCredentials(f"Unsupported authorization scheme {scheme!r}")


class Authenticate:
    def __init__(self, app: App, roles: OperationRoles, mode: str):
        self.app = app
        self.roles = roles
        self.mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            token, bad = presented_token(scope["headers"]), None
        except BadCredentials as exc:
            token, bad = None, exc
        if token is None and bad is None and self.mode == AUTH_NONE:
            return await self.app(scope, receive, send)  # nothing to check
        needs = self.roles.needed(scope["method"], scope["path"])
        if needs is None:
            return await self.app(scope, receive, send)  # credentials or not
        if bad is not None:
            return await _refuse(send, 401, f"{bad}: {HOW}", _INVALID)
        if token is None:
            return await _refuse(send, 401, f"A token is required: {HOW}", _CHALLENGE)
        verifier: TokenVerifier = scope["state"][VERIFIER]
        try:
            holder = await verifier.verify(token)
        except Refused as exc:
            return await _refuse(send, 401, f"{exc}: {HOW}", _INVALID)
        except ApiError as exc:
            headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
            return await _refuse(send, exc.status, exc.message, headers)
        if not allows(holder.role, needs):
            return await _refuse(send, 403, _forbidden(scope, needs, holder), [])
        scope["state"][HOLDER] = holder
        await self.app(scope, receive, send)


def _forbidden(scope: Scope, needs: Role, holder: Holder) -> str:
    return (
        f"{scope['method']} {scope['path']} needs the {needs.label} role; "
        f"the token {holder.name!r} has the {holder.role.label} role"
    )


async def _refuse(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"message": message}).encode()
    await send_json(send, status, body, headers)


def holder_info(holder: Holder | None) -> dict:
    """What connexion's security check and the handlers see of the caller: "anonymous"
    when it sent no token (BOB_API_AUTH=none, or an open operation)."""
    if holder is None:
        return {"sub": "anonymous"}
    return {"sub": holder.name, **asdict(holder), "role": holder.role.label}


class AlreadyChecked:
    """Connexion's security handler for both schemes of the document: Authenticate has
    checked the token already, so the operation's security requirement is met; the caller
    goes into the request's context (`token_info`)."""

    def get_fn(self, _security_scheme: dict, _required_scopes: list) -> object:
        return _checked


def _checked(request) -> dict:
    return holder_info(request.scope.get("state", {}).get(HOLDER))


SECURITY_MAP = {"bearer": AlreadyChecked, "basic": AlreadyChecked}
