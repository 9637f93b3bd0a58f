"""Scratch PostgreSQL databases for tests and benchmarks, made and dropped through the role
`make setup` creates (scripts/setup_postgres.sh); BOB_TEST_PG_URL names another server or
role (which must be allowed to create databases). Each test gets a database of its own,
copied from a template that entities' migrations brought to the current schema once per
session (tests/conftest.py): a copy takes a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://bob_test:bob_test@127.0.0.1:5432/bob_test"
PREFIX = "bob_t_"


def admin_url() -> str:
    """The URL of the tests' own database, through which they create the others."""
    return os.environ.get("BOB_TEST_PG_URL", DEFAULT_URL)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def unreachable() -> str | None:
    """Why the tests' PostgreSQL cannot be used; None when it can."""
    try:
        with psycopg.connect(admin_url(), connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        # The message names host and user, never the password.
        return f"PostgreSQL is not reachable at {urlsplit(admin_url()).hostname}: {exc}"
    return None


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(statement)


def create_database(template: str | None = None) -> str:
    """A new, empty database (or a copy of `template`); answers its URL."""
    name = f"{PREFIX}{uuid.uuid4().hex[:16]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    _admin(statement)
    return with_database(admin_url(), name)


def drop_database(url: str) -> None:
    name = sql.Identifier(urlsplit(url).path.lstrip("/"))
    try:
        # Without FORCE first: the server stops an autovacuum worker in the database
        # itself, where FORCE would need the right to end it (pg_signal_backend).
        _admin(sql.SQL("DROP DATABASE IF EXISTS {}").format(name))
    except psycopg.errors.ObjectInUse:
        # A connection a failed test left open must not keep it.
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def name_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@contextlib.contextmanager
def fresh_database(template: str | None = None) -> Iterator[str]:
    """The URL of a database of this block's own, dropped afterwards."""
    url = create_database(template)
    try:
        yield url
    finally:
        drop_database(url)
