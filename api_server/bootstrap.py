"""The first admin token: made when the API starts with BOB_API_AUTH=tokens and no live
admin token exists, and its secret printed once on stderr, clearly marked. Entities makes
it only while none exists, in one transaction, so API processes starting together make
one, and a restart makes none. (Once every admin token is revoked or expired, the next
start makes a new one: that is the way back in.)"""

from __future__ import annotations

import logging
import sys

import grpc

from bob_common import backoff, rpc
from bob_common.roles import Role
from bob_pb import entities_pb2, entities_pb2_grpc

log = logging.getLogger(__name__)

NAME = "bootstrap-admin"
# The start of the one line that carries the secret; tests and operators grep for it.
MARK = "BOB BOOTSTRAP ADMIN TOKEN"


class _NotYet(Exception):
    """Entities did not decide (unreachable, or busy): try again."""


async def admin_token(entities: entities_pb2_grpc.EntitiesStub) -> None:
    """Makes the first admin token unless a live one exists, waiting for entities."""

    async def attempt() -> entities_pb2.CreateTokenResponse:
        try:
            return await entities.CreateToken(
                entities_pb2.CreateTokenRequest(
                    name=NAME, role=int(Role.ADMIN), unless_admin_exists=True
                )
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in rpc.UNDECIDED:
                raise _NotYet(f"{err.code().name}: {err.details()}") from None
            raise

    try:
        reply = await backoff.until_done(
            attempt, what="entities, to bootstrap an admin token", errors=_NotYet, log=log
        )
    except grpc.aio.AioRpcError as err:
        log.error("could not bootstrap an admin token: %s %s", err.code().name, err.details())
        return
    if reply is None or not reply.created:
        log.info("a live admin token exists: none bootstrapped")
        return
    log.warning(
        "no live admin token existed: created %s (%s); its secret follows on stderr, "
        "shown this once",
        reply.token.name,
        reply.token.id,
    )
    print(
        f"{MARK} (shown once, store it now; it is never shown again): {reply.secret}",
        file=sys.stderr,
        flush=True,
    )


def find_secret(lines: list[str]) -> str | None:
    """The bootstrap secret among an API process's output lines, if it printed one."""
    for line in lines:
        if MARK in line:
            return line.rsplit(": ", 1)[1].strip()
    return None
