"""API tokens: create (the secret answered once), list (never secrets), revoke."""

from __future__ import annotations

import logging

from connexion import request
from google.protobuf import empty_pb2

from api_server import backends, convert, paging
from api_server.auth import VERIFIER
from bob_common import roles
from bob_pb import entities_pb2

log = logging.getLogger(__name__)


def token(t: entities_pb2.ApiToken) -> dict:
    return {
        "id": t.id,
        "name": t.name,
        "role": roles.Role(t.role).label,
        "created-at": convert.timestamp(t.created_at_ms),
        "expires-at": convert.timestamp(t.expires_at_ms),
        "revoked": bool(t.revoked_at_ms),
        "revoked-at": convert.timestamp(t.revoked_at_ms),
    }


def _caller() -> str:
    return request.context.get("token_info", {}).get("sub", "?")


async def token_create(body: dict):
    b = backends.current()
    reply = await b.call(
        b.entities.CreateToken(
            entities_pb2.CreateTokenRequest(
                name=body["name"],
                role=int(roles.parse(body["role"])),
                expires_in_s=body.get("expires_in_s", 0),
            )
        )
    )
    log.info("token %s (%s) created by %s", reply.token.name, body["role"], _caller())
    return {"message": {**token(reply.token), "secret": reply.secret}}, 201


async def token_list(limit: int | None = None, cursor: str | None = None):
    b = backends.current()
    reply = await b.call(b.entities.ListTokens(empty_pb2.Empty()))
    page, headers = paging.slice_page(
        reply.tokens, lambda t: [f"{t.created_at_ms:020d}", t.id], limit, cursor
    )
    return {"message": [token(t) for t in page]}, 200, headers


async def token_revoke(id_: str):
    b = backends.current()
    revoked = await b.call(b.entities.RevokeToken(entities_pb2.TokenRef(id=id_)))
    # This process stops taking it at once; others within BOB_API_TOKEN_CACHE_S.
    getattr(request.state, VERIFIER).forget(id_)
    log.info("token %s (%s) revoked by %s", revoked.name, revoked.id, _caller())
    return {"message": token(revoked)}, 200
