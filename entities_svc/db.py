"""Opening the database named by BOB_DB_URL (SQLite by default, PostgreSQL in production),
and the one thread that uses it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlparse

from peewee import Database, PostgresqlDatabase
from playhouse import db_url

from bob_common import private_files
from entities_svc import journal, migrations, models

log = logging.getLogger(__name__)
T = TypeVar("T")

# WAL lets readers proceed during a write; busy_timeout makes a locked database wait
# instead of failing at once (first: switching to WAL takes a lock that another process
# starting at the same time may hold); foreign_keys makes SQLite enforce what the models
# declare.
SQLITE_PRAGMAS = {
    "busy_timeout": 5000,
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
}
# The files SQLite keeps beside the database file.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def connect(url: str) -> Database:
    """The database of `url`, connected from this thread and bound to the models, as it is
    (no migration)."""
    scheme = urlparse(url).scheme
    params: dict[str, object] = {}
    if scheme.startswith("sqlite"):
        path = db_url.parse(url)["database"]
        if path != ":memory:":
            _owner_only(path)
        params["pragmas"] = SQLITE_PRAGMAS
    elif scheme.startswith("postgres"):
        # psycopg 3 even where psycopg2 is installed too (pyproject.toml says why).
        params["prefer_psycopg3"] = True
    database = db_url.connect(url, **params)
    models.database.initialize(database)
    database.connect(reuse_if_open=True)
    return database


def open_database(url: str) -> Database:
    """Connects, binds the models and applies the schema migrations the database lacks
    (migrations.py). Call it, and every query after it, from the one thread that owns
    the database."""
    database = connect(url)
    try:
        version = migrations.upgrade(database).after
    except BaseException:
        database.close()
        raise
    journal.newest_id()  # so that readers need not ask the database for what is not there
    log.info("database ready (%s, schema version %d)", urlparse(url).scheme, version)
    return database


def _owner_only(path: str) -> None:
    """The database file, made before SQLite opens it, is the owner's only (it holds
    pipeline vars and plugin URLs with their credentials). SQLite gives the -wal, -shm and
    -journal files it creates the mode of the database file; those left by an earlier
    version are narrowed here."""
    private_files.private_file(os.path.abspath(path))
    for suffix in SQLITE_SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            private_files.narrow(path + suffix)


def close_database(database: Database) -> None:
    """Closes this thread's connection; call it from the thread that opened it."""
    if not database.is_closed():
        database.close()


# The names of the database threads, in the kernel's view too (/proc/<pid>/task/*/comm,
# top -H): what the database costs entities can be read per thread (bench/scale.py).
DB_THREAD = "entities-db"
READ_THREAD = "entities-read"
_PR_SET_NAME = 15


def _named_thread(name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix=name, initializer=_set_os_thread_name, initargs=(name,)
    )


def _set_os_thread_name(name: str) -> None:
    """Names the calling thread for the kernel (Python names it for itself only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:15])


class DatabaseThread:
    """The one thread that talks to the database. The database is blocking, so every query
    runs here, off the event loop; one thread also serializes SQLite's writers, which
    would otherwise wait on each other's locks."""

    def __init__(self) -> None:
        self._executor = _named_thread(DB_THREAD)
        # Heavy reads (log windows, counts) on a connection of their own, so that a flood
        # of them never queues lease renewals and claims behind it (issue 10). WAL lets it
        # read while the main thread writes. None for an in-memory database, which a second
        # connection would not see: heavy reads then share the main thread.
        self._reader: ThreadPoolExecutor | None = None
        self._database: Database | None = None
        # Called on the event loop after every call, once its transaction is over: every
        # write goes through here, so this is where waiters learn of what was committed.
        self._after_call: list[Callable[[], None]] = []

    def after_each_call(self, callback: Callable[[], None]) -> None:
        self._after_call.append(callback)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        # In the caller's context (as asyncio.to_thread does), so that what fn logs names
        # the run the caller is about (bob_common.rpc).
        in_context = functools.partial(contextvars.copy_context().run, self._run, fn, *args)
        try:
            return await loop.run_in_executor(self._executor, in_context)
        finally:
            for callback in self._after_call:
                callback()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs fn, which only reads and may be slow, on the reading connection."""
        if self._reader is None:
            return await self.call(fn, *args)
        loop = asyncio.get_running_loop()
        in_context = functools.partial(contextvars.copy_context().run, self._run, fn, *args)
        return await loop.run_in_executor(self._reader, in_context)

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._database is not None:
            reconnect_if_lost(self._database)
        return fn(*args)

    async def open(self, url: str) -> None:
        self._database = await self.call(open_database, url)
        if not _in_memory(url):
            self._reader = _named_thread(READ_THREAD)

    async def close(self) -> None:
        """Closes the connection (from the thread that owns it) and ends the thread."""
        if self._database is not None:
            if self._reader is not None:
                # peewee keeps a connection per thread: the reader closes its own.
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._reader, close_database, self._database)
                self._reader.shutdown(wait=True)
                self._reader = None
            await self.call(close_database, self._database)
            self._database = None
        self._executor.shutdown(wait=True)


def reconnect_if_lost(database: Database) -> None:
    """Replaces this thread's PostgreSQL connection when it was lost (the server restarted,
    or ended it): the call that met the loss failed (UNAVAILABLE, the caller retries), the
    next one gets a new connection. SQLite's file never goes away."""
    if not isinstance(database, PostgresqlDatabase) or database.is_closed():
        return  # closed: peewee connects on the first query
    if database.in_transaction() or database.is_connection_usable():
        return
    log.warning("the database connection was lost: connecting again")
    with contextlib.suppress(Exception):
        database.close()
    database.connect()


def _in_memory(url: str) -> bool:
    return urlparse(url).scheme.startswith("sqlite") and db_url.parse(url)["database"] in (
        ":memory:",
        "",
    )
