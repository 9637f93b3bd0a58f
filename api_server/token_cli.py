"""`python -m api_server tokens create|list|revoke`: API tokens from the command line,
through entities as the API reaches it (the same settings and channel).

    python -m api_server tokens create --name ci --role operate [--expires-in 90d]
    python -m api_server tokens list
    python -m api_server tokens revoke tok_0123456789ab

`create` prints the secret alone on stdout (`TOKEN=$(... tokens create ...)`), and what
it made on stderr; the secret is never shown again.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time

import grpc
from google.protobuf import empty_pb2

from api_server import backends, convert
from bob_common import roles
from bob_common.config import ApiSettings
from bob_common.startup import RET_CONFIG, RET_ERROR, RET_OK, settings_or_report
from bob_pb import entities_pb2, entities_pb2_grpc

UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> int:
    """Seconds in "90d", "12h", "30m", "45s" or "45"."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90d, 12h, 30m, 45s")
    return int(match.group(1)) * UNITS_S[match.group(2) or "s"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m api_server tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a token; its secret goes to stdout, once")
    create.add_argument("--name", required=True, help="what it is for, e.g. ci-deploy")
    create.add_argument("--role", required=True, choices=roles.NAMES)
    create.add_argument(
        "--expires-in", type=duration_s, default=0, help="e.g. 90d, 12h; never by default"
    )
    sub.add_parser("list", help="every token, without secrets")
    revoke = sub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", help="the token's id, as listed (tok_...)")
    return p


def _row(t: entities_pb2.ApiToken) -> list[str]:
    if t.revoked_at_ms:
        state = "revoked"
    elif t.expires_at_ms and t.expires_at_ms <= time.time() * 1000:
        state = "expired"
    else:
        state = "live"
    return [
        t.id,
        t.name,
        roles.Role(t.role).label,
        convert.timestamp(t.created_at_ms) or "",
        convert.timestamp(t.expires_at_ms) or "never",
        state,
    ]


def _table(rows: list[list[str]]) -> str:
    header = ["ID", "NAME", "ROLE", "CREATED", "EXPIRES", "STATE"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


async def _run(args: argparse.Namespace, settings: ApiSettings) -> int:
    async with backends.open_channel(settings) as channel:
        entities = entities_pb2_grpc.EntitiesStub(channel)
        timeout = settings.common.grpc_timeout_s
        if args.command == "create":
            reply = await entities.CreateToken(
                entities_pb2.CreateTokenRequest(
                    name=args.name,
                    role=int(roles.parse(args.role)),
                    expires_in_s=args.expires_in,
                ),
                timeout=timeout,
            )
            t = reply.token
            expires = convert.timestamp(t.expires_at_ms) or "never"
            print(
                f"created token {t.id} {t.name!r} ({args.role}, expires {expires}); "
                "its secret is on stdout, shown this once",
                file=sys.stderr,
            )
            print(reply.secret)
        elif args.command == "list":
            reply = await entities.ListTokens(empty_pb2.Empty(), timeout=timeout)
            print(_table([_row(t) for t in reply.tokens]))
        else:
            t = await entities.RevokeToken(entities_pb2.TokenRef(id=args.id), timeout=timeout)
            print(f"revoked token {t.id} {t.name!r}")
    return RET_OK


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    settings = settings_or_report("api tokens", ApiSettings.from_env)
    if settings is None:
        return RET_CONFIG
    try:
        return asyncio.run(_run(args, settings))
    except grpc.aio.AioRpcError as err:
        print(f"api tokens: {err.details() or err.code().name}", file=sys.stderr)
        return RET_ERROR
