"""`python -m api_server`: serves the REST API with uvicorn; `python -m api_server tokens
...` manages API tokens (token_cli.py)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from api_server import token_cli
from api_server.app import create_app
from api_server.operation_roles import SpecError
from bob_common.config import AUTH_NONE, ApiSettings
from bob_common.startup import RET_CONFIG, RET_OK, settings_or_report

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["tokens"]:
        return token_cli.main(args[1:])
    settings = settings_or_report("api", ApiSettings.from_env)
    if settings is None:
        return RET_CONFIG
    try:
        app = create_app(settings)
    except SpecError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return RET_CONFIG
    _log_auth(settings)
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


def _log_auth(settings: ApiSettings) -> None:
    if settings.auth != AUTH_NONE:
        log.info("API tokens required (BOB_API_AUTH=tokens); open paths: %s", settings.open_paths)
    elif settings.on_loopback:
        log.info("no API token required on loopback (BOB_API_AUTH=none)")
    else:
        log.warning(
            "!!! UNAUTHENTICATED API on %s (BOB_API_AUTH=none, BOB_API_ALLOW_UNAUTHENTICATED"
            "=true): anyone who reaches this address can read, change, start and stop "
            "everything. Set BOB_API_AUTH=tokens unless this network is yours alone !!!",
            settings.host,
        )
