"""What the plugins share: their settings, safe names, and serving on 127.0.0.1 (or the
address BOB_PLUGIN_HOST names, as a deploy does)."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse

from bob_common.config import ConfigError, plugin_host
from bob_common.logs import configure_logging
from bob_common.startup import RET_CONFIG, RET_OK

# A group, pipeline name, run id or artifact name; "." and ".." are refused on top.
NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

log = logging.getLogger(__name__)


def safe_name(value: str) -> bool:
    return bool(NAME.match(value)) and value not in (".", "..")


def message(text: str, status: int = 200) -> JSONResponse:
    """Bob's envelope: {"message": ...}."""
    return JSONResponse({"message": text}, status_code=status)


def port_from(env: Mapping[str, str], name: str, default: int) -> int | None:
    raw = env.get(name) or str(default)
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        print(f"{name}={raw!r} is not a port", file=sys.stderr)
        return None
    return port


def start_logging(service: str) -> None:
    configure_logging(service, os.environ.get("BOB_LOG_LEVEL", "INFO").upper())


def serve(service: str, app: Starlette, port: int) -> int:
    try:
        host = plugin_host(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return RET_CONFIG
    log.info("%s serving on http://%s:%d", service, host, port)
    # uvicorn handles SIGINT/SIGTERM: it stops accepting and finishes requests.
    uvicorn.run(
        app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10
    )
    return RET_OK
