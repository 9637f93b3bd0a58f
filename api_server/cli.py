"""`python -m api_server`: serves the REST API with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from api_server.app import create_app
from bob_common.config import ApiSettings
from bob_common.startup import RET_CONFIG, RET_OK, settings_or_report

log = logging.getLogger(__name__)


def main() -> int:
    settings = settings_or_report("api", ApiSettings.from_env)
    if settings is None:
        return RET_CONFIG
    app = create_app(settings)
    log.info("serving on http://%s:%d", settings.host, settings.port)
    # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes requests, runs lifespan exit.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return RET_OK
