"""The databases a scenario runs on: SQLite (a file of its own) and PostgreSQL (a scratch
database of its own on `make setup`'s server, dropped afterwards), and the CPU time of the
PostgreSQL processes that serve one database."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from devcluster import postgres

KINDS = ("sqlite", "postgresql")


def label(scenario: str, kind: str) -> str:
    """The scenario's name in the table: SQLite's rows keep the name they always had."""
    return scenario if kind == "sqlite" else f"{scenario} pg"


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of an empty database of this block's own."""
    if kind == "sqlite":
        workdir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{workdir / 'bob.db'}"
        return
    why = postgres.unreachable()
    if why:
        raise RuntimeError(f"{why} (`make setup` starts it)")
    with postgres.fresh_database() as url:
        yield url


# The server's own processes whose work grows with what a database is sent (the WAL is
# written and flushed by them); shared with whatever else uses the server.
_SERVER_WORKERS = ("walwriter", "checkpointer", "background writer")


def server_pids(url: str) -> list[int]:
    """The backends serving `url`'s database and the server's WAL and checkpoint workers."""
    name = postgres.name_of(url)
    found = subprocess.run(
        ["ps", "-u", "postgres", "-o", "pid=,args="], capture_output=True, text=True
    ).stdout
    pids = []
    for line in found.splitlines():
        pid, _, args = line.strip().partition(" ")
        args = args.strip()
        if name in args.split() or any(args.endswith(w) for w in _SERVER_WORKERS):
            pids.append(int(pid))
    return pids
