"""A resource provider serving a git repository as a tar, by Bob's contract:

- `GET /bob_resource?repo=<path or URL>&ref=<ref>` answers a tar (made by `git archive`)
  of the repository's files at `ref`: a branch, tag or commit, HEAD when not given.
  `branch` is accepted for `ref`, as Bob's own git provider names it;
- `GET /ping` answers 200.

A local path is archived in place. A URL (https://, ssh://, git://, file:// or
user@host:path) is fetched first, that ref only and at depth 1, into a temporary
directory that is removed once the answer has been sent. The tar is streamed from git to
the client; it is never held whole.

It serves whatever repository its caller names, on this machine or reachable from it:
like every reference plugin, it listens on 127.0.0.1 only.

`python -m bob_plugins.resource_git`; BOB_GIT_PROVIDER_PORT (8001).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bob_common.startup import RET_CONFIG
from bob_plugins.serve import message, port_from, serve, start_logging

# Named, not __name__: run with -m, this module is __main__.
log = logging.getLogger("bob_plugins.resource_git")

DEFAULT_PORT = 8001
CHUNK = 64 * 1024
_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
# A ref as git accepts it, minus anything that could read as an option or a revision
# expression beyond a plain name or commit.
_REF = re.compile(r"^[A-Za-z0-9._/@-]{1,256}$")
# Git never prompts (there is nobody to answer) and never runs a transport such as ext::.
_GIT_ENV = {
    **os.environ,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
}


class GitFailed(Exception):
    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


async def _git(*args: str, status: int = 404, what: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        env=_GIT_ENV,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise GitFailed(f"{what}: {detail[-1] if detail else 'git failed'}", status)
    return out.decode().strip()


async def ping(request: Request) -> Response:
    return message("Ack")


async def bob_resource(request: Request) -> Response:
    repo = request.query_params.get("repo", "")
    ref = request.query_params.get("ref") or request.query_params.get("branch") or "HEAD"
    if not repo or repo.startswith("-"):
        return message("The param repo (a path or URL of a git repository) is required", 400)
    if not _REF.match(ref) or ref.startswith("-") or ".." in ref:
        return message(f"Invalid ref {ref!r}", 400)
    scratch = None
    try:
        if _URL.match(repo):
            scratch = tempfile.mkdtemp(prefix="bob-git-")
            await _git("init", "-q", scratch, status=500, what="git init")
            await _git(
                "-C",
                scratch,
                "fetch",
                "-q",
                "--depth",
                "1",
                "--",
                repo,
                ref,
                status=404,
                what=f"could not fetch {ref} from {repo}",
            )
            where, rev = scratch, "FETCH_HEAD"
        elif Path(repo).is_dir():
            where, rev = repo, ref
        else:
            return message(f"No repository at {repo}", 404)
        commit = await _git(
            "-C",
            where,
            "rev-parse",
            "--verify",
            "--quiet",
            f"{rev}^{{commit}}",
            status=404,
            what=f"no commit {ref} in {repo}",
        )
    except GitFailed as exc:
        _remove(scratch)
        return message(exc.text, exc.status)
    log.info("serving %s at %s (%s)", repo, ref, commit[:12])
    archive = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        where,
        "archive",
        "--format=tar",
        commit,
        env=_GIT_ENV,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return StreamingResponse(_stream(archive, scratch), media_type="application/x-tar")


async def _stream(archive: asyncio.subprocess.Process, scratch: str | None) -> AsyncIterator[bytes]:
    assert archive.stdout is not None
    try:
        while chunk := await archive.stdout.read(CHUNK):
            yield chunk
        if await archive.wait() != 0:
            # The status line has gone out: breaking the connection is all that is left,
            # and the client sees a truncated tar.
            raise RuntimeError(f"git archive exited with {archive.returncode}")
    finally:
        if archive.returncode is None:
            archive.kill()
            await archive.wait()
        _remove(scratch)


def _remove(scratch: str | None) -> None:
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/bob_resource", bob_resource, methods=["GET"]),
        ]
    )


def main() -> int:
    start_logging("git-provider")
    port = port_from(os.environ, "BOB_GIT_PROVIDER_PORT", DEFAULT_PORT)
    if port is None:
        return RET_CONFIG
    if shutil.which("git") is None:
        print("git-provider: git is not installed", file=sys.stderr)
        return RET_CONFIG
    return serve("git-provider", create_app(), port)


if __name__ == "__main__":
    sys.exit(main())
