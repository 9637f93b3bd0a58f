"""`python -m api_server`: serves the REST API with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from api_server.app import create_app
from bob_common.config import ApiSettings, ConfigError
from bob_common.logs import configure_logging

RET_OK = 0
RET_CONFIG = 2

log = logging.getLogger(__name__)


def main() -> int:
    try:
        settings = ApiSettings.from_env()
    except ConfigError as exc:
        print(f"api_server: {exc}")
        return RET_CONFIG
    configure_logging("api", settings.common.log_level)
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
