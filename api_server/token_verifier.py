"""Who holds a presented token: entities' answer, remembered for a short while.

Every request with a token needs its role, and the hottest one (a run's status) is
answered in microseconds from memory; asking entities each time would cost several times
that. So a verified token is remembered for BOB_API_TOKEN_CACHE_S (never past its own
expiry), in a bounded LRU: a revocation made through another API process takes effect
here within that time, one made through this process at once (forget()). Refusals are
not remembered: a token created a moment ago works at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from cachetools import TLRUCache

from api_server.problems import from_grpc
from bob_common.api_tokens import hash_secret
from bob_common.roles import Role
from bob_pb import entities_pb2


@dataclass(frozen=True)
class Holder:
    """The token a request came with: who it is and what it may do."""

    token_id: str
    name: str
    role: Role
    # 0 when it never expires.
    expires_at_ms: int


class Refused(Exception):
    """The token is unknown, expired or revoked; the message says which (401)."""


class Entities(Protocol):
    """Where the verifier asks: the app's backends.Backends (its `entities` stub)."""

    entities: Any


class TokenVerifier:
    def __init__(self, backends: Entities, ttl_s: float, size: int):
        self._backends = backends
        self._ttl_s = ttl_s
        self._cache: TLRUCache[str, Holder] = TLRUCache(maxsize=size, ttu=self._until)

    def _until(self, _key: str, holder: Holder, now: float) -> float:
        """Until when (monotonic) a verified token is taken on trust."""
        until = now + self._ttl_s
        if holder.expires_at_ms:
            left_s = holder.expires_at_ms / 1000 - time.time()
            until = min(until, now + left_s)
        return until

    async def verify(self, secret: str) -> Holder:
        """The holder of `secret`; Refused when entities knows no live token by it,
        problems.ApiError (503) when entities cannot answer."""
        key = hash_secret(secret)
        holder = self._cache.get(key)
        if holder is not None:
            return holder
        try:
            token = await self._backends.entities.VerifyToken(
                entities_pb2.VerifyTokenRequest(token_hash=key)
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise Refused(err.details() or "Unknown token") from None
            raise from_grpc(err) from err
        holder = Holder(token.id, token.name, Role(token.role), token.expires_at_ms)
        if self._ttl_s > 0:
            self._cache[key] = holder
        return holder

    def forget(self, token_id: str) -> None:
        """Drops a token from the cache (it was revoked here)."""
        for key, holder in list(self._cache.items()):
            if holder.token_id == token_id:
                self._cache.pop(key, None)
