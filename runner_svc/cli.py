"""`python -m runner_svc`: reads the configuration once, sets up logging, runs the
runner until SIGTERM or SIGINT, and returns an exit code."""

from __future__ import annotations

import asyncio
import logging
import signal

from bob_common import event_loop
from bob_common.config import RunnerSettings
from bob_common.startup import RET_CONFIG, RET_ERROR, RET_OK, settings_or_report
from runner_svc.errors import ExecutorMisconfigured, UnknownRunnerType
from runner_svc.executors import Executor, create_executor
from runner_svc.service import RunnerService
from runner_svc.tuning import Tuning

log = logging.getLogger(__name__)


def main() -> int:
    settings = settings_or_report("runner", RunnerSettings.from_env)
    if settings is None:
        return RET_CONFIG
    try:
        executor = create_executor(settings)
    except (UnknownRunnerType, ExecutorMisconfigured) as exc:
        log.error("%s", exc)
        return RET_CONFIG
    try:
        event_loop.run(_serve(settings, executor))
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
