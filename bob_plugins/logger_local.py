"""A logger that keeps each run's log in a local file, by Bob's logger contract:

- `PUT /bob_logs/{run_id}` appends the body: one or more log lines, newline-separated
  (a body whose last line lacks its newline gets one, so each PUT adds whole lines);
- `GET /bob_logs/{run_id}` answers the lines as text; with `?follow=true` it goes on
  streaming the lines appended later, until the client leaves, the log is deleted, or
  nothing new has come for BOB_LOGGER_FOLLOW_IDLE_S (300 s);
- `DELETE /bob_logs/{run_id}` removes the log (200 also when there was none, as Bob's
  reference logger answers);
- `GET /ping` answers 200.

A PUT body is streamed to a temporary file, at most MAX_PUT_BYTES (16 MiB; beyond it the
answer is 413 and nothing is appended), and appended to the log only once complete, under
the run's lock: a broken-off PUT appends nothing, and two PUTs never interleave. A run id
must be a plain name (letters, digits, `.`, `_`, `-`, not starting with `.`), so nothing
can be read or written outside BOB_LOGGER_DIR.

`python -m bob_plugins.logger_local`; BOB_LOGGER_PORT (8003), BOB_LOGGER_DIR (data/logs),
BOB_LOGGER_FOLLOW_IDLE_S (300).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from bob_common.private_files import private_dir
from bob_common.startup import RET_CONFIG
from bob_plugins.serve import message, port_from, safe_name, serve, start_logging

# Named, not __name__: run with -m, this module is __main__.
log = logging.getLogger("bob_plugins.logger_local")

DEFAULT_PORT = 8003
DEFAULT_DIR = "data/logs"
# One PUT's body at most: a runner sends its lines in batches far smaller than this.
MAX_PUT_BYTES = 16 * 1024 * 1024
# A followed log with nothing new for this long is closed.
DEFAULT_FOLLOW_IDLE_S = 300.0
# How often a follower looks at its file when no append has woken it (e.g. a deletion).
FOLLOW_POLL_S = 1.0
CHUNK = 64 * 1024
TEXT = "text/plain; charset=utf-8"
PARTIAL_SUFFIX = ".part"


class TooLarge(Exception):
    pass


class Logs:
    def __init__(self, root: Path, *, follow_idle_s: float) -> None:
        self.root = root
        self.follow_idle_s = follow_idle_s
        # Per run id: its lock and how many requests use it (the entry goes with the last).
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Counts appends and deletions, and is notified of each, so that followers neither
        # poll tightly nor miss one that came between their read and their wait.
        self._changes = 0
        self._news = asyncio.Condition()

    def _path(self, request: Request) -> Path | None:
        run_id = request.path_params["run_id"]
        # Temporary files start with "." (see put): no run's log can be one.
        if not safe_name(run_id) or run_id.startswith("."):
            return None
        return self.root / run_id

    async def ping(self, request: Request) -> Response:
        return message("Ack")

    async def put(self, request: Request) -> Response:
        path = self._path(request)
        if path is None:
            return _invalid_name()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_PUT_BYTES:
            return _too_large()
        partial = self.root / f".{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        try:
            size, last = await _receive(request, partial)
            if size:
                async with self._exclusive(path.name):
                    await _append(partial, path, newline=last != b"\n")
                await self._changed()
        except TooLarge:
            return _too_large()
        except ClientDisconnect:
            log.warning("a PUT to %s broke off; nothing appended", path.name)
            return message("Upload broke off", 400)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return message("Ok")

    async def get(self, request: Request) -> Response:
        path = self._path(request)
        if path is None or not path.is_file():
            return message("Run not found", 404)
        if request.query_params.get("follow", "").lower() != "true":
            return FileResponse(path, media_type=TEXT)
        return StreamingResponse(self._follow(path), media_type=TEXT)

    async def delete(self, request: Request) -> Response:
        path = self._path(request)
        if path is None:
            return _invalid_name()
        async with self._exclusive(path.name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        await self._changed()
        return message("Ok")

    @contextlib.asynccontextmanager
    async def _exclusive(self, run_id: str) -> AsyncIterator[None]:
        """One append or deletion of a run's log at a time."""
        lock, users = self._locks.get(run_id) or (asyncio.Lock(), 0)
        self._locks[run_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[run_id]
            if users == 1:
                del self._locks[run_id]
            else:
                self._locks[run_id] = (lock, users - 1)

    async def _changed(self) -> None:
        async with self._news:
            self._changes += 1
            self._news.notify_all()

    async def _news_after(self, seen: int, timeout: float) -> None:
        """Returns once something changed after `seen` (a value of _changes), or after
        `timeout`."""
        async with self._news:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait_for(lambda: self._changes != seen), timeout)

    async def _follow(self, path: Path) -> AsyncIterator[bytes]:
        """The log's whole lines so far, then each line appended, until the log is deleted
        or has been idle for follow_idle_s. Starlette cancels this when the client leaves."""
        loop = asyncio.get_running_loop()
        held = b""  # a line whose newline has not been written yet
        async with await anyio.open_file(path, "rb") as file:
            inode = os.fstat(file.wrapped.fileno()).st_ino
            idle_since = loop.time()
            while True:
                seen = self._changes
                chunk = await file.read(CHUNK)
                if chunk:
                    idle_since = loop.time()
                    held += chunk
                    cut = held.rfind(b"\n") + 1
                    if cut == 0 and len(held) >= CHUNK:
                        cut = len(held)  # a very long line goes out in pieces
                    if cut:
                        yield held[:cut]
                        held = held[cut:]
                    continue
                if not _is_file(path, inode):  # deleted (and maybe begun anew)
                    return
                idle = loop.time() - idle_since
                if idle >= self.follow_idle_s:
                    log.info("closing the follow of %s: nothing new for %.0f s", path.name, idle)
                    return
                await self._news_after(seen, min(FOLLOW_POLL_S, self.follow_idle_s - idle))


def _is_file(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except FileNotFoundError:
        return False


async def _receive(request: Request, partial: Path) -> tuple[int, bytes]:
    """Streams the body into `partial`: its size and last byte. TooLarge past the cap."""
    size = 0
    last = b""
    async with await anyio.open_file(partial, "wb") as out:
        async for chunk in request.stream():
            if not chunk:
                continue
            size += len(chunk)
            if size > MAX_PUT_BYTES:
                raise TooLarge
            await out.write(chunk)
            last = chunk[-1:]
    return size, last


async def _append(partial: Path, path: Path, *, newline: bool) -> None:
    async with (
        await anyio.open_file(partial, "rb") as src,
        await anyio.open_file(path, "ab") as out,
    ):
        while chunk := await src.read(CHUNK):
            await out.write(chunk)
        if newline:
            await out.write(b"\n")


def _invalid_name() -> Response:
    return message("Invalid run id: use letters, digits, '.', '_' and '-'", 400)


def _too_large() -> Response:
    return message(f"A PUT body may have {MAX_PUT_BYTES} bytes at most", 413)


def create_app(root: Path, *, follow_idle_s: float = DEFAULT_FOLLOW_IDLE_S) -> Starlette:
    logs = Logs(root, follow_idle_s=follow_idle_s)
    run = "/bob_logs/{run_id}"
    return Starlette(
        routes=[
            Route("/ping", logs.ping, methods=["GET"]),
            Route(run, logs.put, methods=["PUT"]),
            Route(run, logs.get, methods=["GET"]),
            Route(run, logs.delete, methods=["DELETE"]),
        ]
    )


def main() -> int:
    start_logging("logger")
    port = port_from(os.environ, "BOB_LOGGER_PORT", DEFAULT_PORT)
    if port is None:
        return RET_CONFIG
    raw_idle = os.environ.get("BOB_LOGGER_FOLLOW_IDLE_S") or str(DEFAULT_FOLLOW_IDLE_S)
    try:
        follow_idle_s = float(raw_idle)
    except ValueError:
        follow_idle_s = -1.0
    if not follow_idle_s > 0:
        print(
            f"BOB_LOGGER_FOLLOW_IDLE_S={raw_idle!r} is not a positive number of seconds",
            file=sys.stderr,
        )
        return RET_CONFIG
    # Created for its owner only: builds' logs and artifacts may hold their secrets.
    root = private_dir(Path(os.environ.get("BOB_LOGGER_DIR") or DEFAULT_DIR).resolve())
    # Left by PUTs that were cut short when the logger last stopped.
    for leftover in root.glob(f".*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)
    log.info("logs are kept in %s", root)
    return serve("logger", create_app(root, follow_idle_s=follow_idle_s), port)


if __name__ == "__main__":
    sys.exit(main())
