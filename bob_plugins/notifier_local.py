"""The reference notifier (issue 11): records the run notifications entities sends it.

- `POST /bob_notification` takes one JSON object (a run's end) and appends it as one line
  to BOB_NOTIFIER_FILE (a JSON Lines file), flushed and fsynced before it answers 200, so
  that a notification it acknowledged is never lost;
- `GET /bob_notification` answers what it recorded, oldest first: {"message": [...]};
- `GET /ping` answers 200.

A real notifier would set a forge's commit status or post to a chat instead; this one shows
what it would be given. Bodies above MAX_BODY_BYTES, and bodies that are not one JSON
object, are refused with 400.

`python -m bob_plugins.notifier_local`; BOB_NOTIFIER_PORT (8004), BOB_NOTIFIER_FILE
(data/notifications.jsonl).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bob_common.private_files import private_dir
from bob_common.startup import RET_CONFIG
from bob_plugins.serve import message, port_from, serve, start_logging

# Named, not __name__: run with -m, this module is __main__.
log = logging.getLogger("bob_plugins.notifier_local")

DEFAULT_PORT = 8004
DEFAULT_FILE = "data/notifications.jsonl"
# A run's end is a few hundred bytes; a reason may be long, not this long.
MAX_BODY_BYTES = 256 * 1024


class Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One append at a time: lines never interleave.
        self._lock = asyncio.Lock()

    async def ping(self, request: Request) -> Response:
        return message("Ack")

    async def record(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return message(f"Body larger than {MAX_BODY_BYTES} bytes", 400)
        try:
            document = json.loads(body)
        except ValueError:
            return message("Body is not JSON", 400)
        if not isinstance(document, dict):
            return message("Body must be a JSON object", 400)
        line = json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        log.info(
            "run %s of %s ended %s",
            document.get("run_id"),
            document.get("pipeline"),
            document.get("status"),
        )
        return message("Ok")

    def _append(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    async def recorded(self, request: Request) -> Response:
        async with self._lock:
            text = await asyncio.to_thread(self._read)
        return JSONResponse({"message": [json.loads(line) for line in text.splitlines() if line]})

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""


def create_app(path: Path) -> Starlette:
    recorder = Recorder(path)
    return Starlette(
        routes=[
            Route("/ping", recorder.ping, methods=["GET"]),
            Route("/bob_notification", recorder.record, methods=["POST"]),
            Route("/bob_notification", recorder.recorded, methods=["GET"]),
        ]
    )


def main() -> int:
    start_logging("notifier")
    port = port_from(os.environ, "BOB_NOTIFIER_PORT", DEFAULT_PORT)
    if port is None:
        return RET_CONFIG
    path = Path(os.environ.get("BOB_NOTIFIER_FILE") or DEFAULT_FILE).resolve()
    # Its directory is its owner's only, as the other plugins' data: reasons may say much.
    private_dir(path.parent)
    log.info("notifications are recorded in %s", path)
    return serve("notifier", create_app(path), port)


if __name__ == "__main__":
    sys.exit(main())
