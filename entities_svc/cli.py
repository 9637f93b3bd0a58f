"""`python -m entities_svc`: read the settings once, set up logging, serve until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from bob_common.config import ConfigError, EntitiesSettings
from bob_common.logs import configure_logging
from entities_svc.server import BindError
from entities_svc.service import EntitiesService

log = logging.getLogger(__name__)

RET_OK = 0
RET_ERROR = 1
RET_CONFIG = 2
RET_BIND = 3


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


def main() -> int:
    try:
        settings = EntitiesSettings.from_env()
    except ConfigError as exc:
        print(f"entities: {exc}", file=sys.stderr)
        return RET_CONFIG
    configure_logging("entities", settings.common.log_level)
    log.info("starting with %s", settings)
    try:
        asyncio.run(_serve(settings))
    except BindError as exc:
        log.error("%s", exc)
        return RET_BIND
    except Exception:
        log.exception("entities service failed")
        return RET_ERROR
    return RET_OK
