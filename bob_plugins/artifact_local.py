"""An artifact store that keeps artifacts on local disk, by Bob's contract:

- `POST /bob_artifact/{group}/{name}/{run_id}/{artifact}` stores the request body (a tar);
- `GET` of the same path answers it, `DELETE` removes it;
- `GET /ping` answers 200.

Bodies are streamed to and from disk, never held in memory. An upload is written to a
temporary file beside its destination and renamed into place only once complete, so a
broken-off upload never leaves a partial artifact that a GET would serve. Every path
segment must be a plain name (letters, digits, `.`, `_`, `-`), so nothing can be read or
written outside BOB_ARTIFACT_DIR.

`python -m bob_plugins.artifact_local`; BOB_ARTIFACT_STORE_PORT (8002), BOB_ARTIFACT_DIR
(data/artifacts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from bob_common.private_files import private_dir
from bob_common.startup import RET_CONFIG
from bob_plugins.serve import (
    message,
    port_from,
    safe_name,
    serve,
    start_logging,
)

# Named, not __name__: run with -m, this module is __main__.
log = logging.getLogger("bob_plugins.artifact_local")

SEGMENTS = ("group", "name", "run_id", "artifact")
DEFAULT_PORT = 8002
DEFAULT_DIR = "data/artifacts"


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, request: Request) -> Path | None:
        parts = [request.path_params[s] for s in SEGMENTS]
        if not all(safe_name(p) for p in parts):
            return None
        return self.root.joinpath(*parts)

    async def ping(self, request: Request) -> Response:
        return message("Ack")

    async def upload(self, request: Request) -> Response:
        path = self._path(request)
        if path is None:
            return message("Invalid name: use letters, digits, '.', '_' and '-'", 400)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in request.stream():
                    await out.write(chunk)
            os.replace(partial, path)
        except ClientDisconnect:
            log.warning("upload of %s broke off; nothing stored", path)
            return message("Upload broke off", 400)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        log.info("stored %s (%d bytes)", path.relative_to(self.root), path.stat().st_size)
        return message("Ok")

    async def download(self, request: Request) -> Response:
        path = self._path(request)
        if path is None or not path.is_file():
            return message("No such artifact", 404)
        return FileResponse(path, media_type="application/x-tar")

    async def delete(self, request: Request) -> Response:
        path = self._path(request)
        if path is None or not path.is_file():
            return message("No such artifact", 404)
        path.unlink()
        # Empty run, pipeline and group directories go too.
        for parent in list(path.parents)[:3]:
            with contextlib.suppress(OSError):
                parent.rmdir()
        return message("Ok")


def create_app(root: Path) -> Starlette:
    store = Store(root)
    artifact = "/bob_artifact/{group}/{name}/{run_id}/{artifact}"
    return Starlette(
        routes=[
            Route("/ping", store.ping, methods=["GET"]),
            Route(artifact, store.upload, methods=["POST"]),
            Route(artifact, store.download, methods=["GET"]),
            Route(artifact, store.delete, methods=["DELETE"]),
        ]
    )


def main() -> int:
    start_logging("artifact-store")
    port = port_from(os.environ, "BOB_ARTIFACT_STORE_PORT", DEFAULT_PORT)
    if port is None:
        return RET_CONFIG
    # Created for its owner only: builds' logs and artifacts may hold their secrets.
    root = private_dir(Path(os.environ.get("BOB_ARTIFACT_DIR") or DEFAULT_DIR).resolve())
    log.info("artifacts are kept in %s", root)
    return serve("artifact-store", create_app(root), port)


if __name__ == "__main__":
    sys.exit(main())
