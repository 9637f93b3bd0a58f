"""`python -m runner_svc`: reads the configuration once, sets up logging, runs the
runner until SIGTERM or SIGINT, and returns an exit code."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from bob_common.config import ConfigError, RunnerSettings
from bob_common.logs import configure_logging
from runner_svc.errors import UnknownRunnerType
from runner_svc.executor import Executor, create_executor
from runner_svc.service import RunnerService
from runner_svc.tuning import Tuning

log = logging.getLogger(__name__)

RET_OK = 0
RET_ERROR = 1  # the runner stopped on an unexpected error
RET_CONFIG = 2  # the configuration is invalid


def main() -> int:
    try:
        settings = RunnerSettings.from_env()
    except ConfigError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return RET_CONFIG
    configure_logging("runner", settings.common.log_level)
    try:
        executor = create_executor(settings)
    except UnknownRunnerType as exc:
        log.error("%s", exc)
        return RET_CONFIG
    try:
        asyncio.run(_serve(settings, executor))
    except Exception:
        log.exception("runner %s stopped on an error", settings.runner_id)
        return RET_ERROR
    return RET_OK


async def _serve(settings: RunnerSettings, executor: Executor) -> None:
    service = RunnerService(settings, executor, Tuning.from_settings(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_shutdown, sig.name)
    await service.run()
