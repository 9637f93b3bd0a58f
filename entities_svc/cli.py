"""`python -m entities_svc`: read the settings once, set up logging, serve until a signal.
`python -m entities_svc migrate`: apply the schema migrations the database lacks, print
what was applied, and exit (0 also when there was nothing to apply)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import peewee

from bob_common import event_loop
from bob_common.config import EntitiesSettings, address_is_loopback
from bob_common.startup import RET_CONFIG, RET_ERROR, RET_OK, settings_or_report
from entities_svc import db, migrations
from entities_svc.server import BindError
from entities_svc.service import EntitiesService

log = logging.getLogger(__name__)

RET_BIND = 3  # the gRPC address cannot be bound


async def _serve(settings: EntitiesSettings) -> None:
    service = EntitiesService(settings)
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            log.warning("%s again: stopping without grace", signal.Signals(signum).name)
            service.hurry()
        else:
            log.info("%s: stopping", signal.Signals(signum).name)
            stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await service.run(stopping)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m entities_svc", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser(
        "migrate",
        help="apply the schema migrations the database of BOB_DB_URL lacks, then exit",
    )
    return parser


def migrate(settings: EntitiesSettings) -> int:
    """Brings the database up to this version's schema (as a start would), without serving:
    what a deploy runs before it restarts entities on a new version."""
    try:
        database = db.connect(settings.db_url)
        try:
            done = migrations.upgrade(database)
        finally:
            db.close_database(database)
    except migrations.SchemaTooNew as exc:
        log.error("%s", exc)
        return RET_ERROR
    except peewee.OperationalError as exc:
        # Unreachable, refused, a wrong password: the driver's words (never the password).
        log.error("cannot migrate the database: %s", exc)
        return RET_ERROR
    except Exception:
        log.exception("migrating the database failed")
        return RET_ERROR
    for line in done.describe():
        print(line)
    return RET_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    settings = settings_or_report("entities", EntitiesSettings.from_env)
    if settings is None:
        return RET_CONFIG
    if args.command == "migrate":
        return migrate(settings)
    log.info("starting with %s", settings)
    if not settings.common.tls and not address_is_loopback(settings.listen_addr):
        # Allowed by BOB_ENTITIES_ALLOW_PLAINTEXT, or the settings would have refused.
        log.warning(
            "PLAINTEXT gRPC on %s, beyond loopback (BOB_ENTITIES_ALLOW_PLAINTEXT): anyone "
            "who reaches it can claim, release and change anything, as anyone",
            settings.listen_addr,
        )
    try:
        event_loop.run(_serve(settings))
    except BindError as exc:
        log.error("%s", exc)
        return RET_BIND
    except Exception:
        log.exception("entities service failed")
        return RET_ERROR
    return RET_OK
