"""SQL run on a test's database behind the back of the entities service (to break it, or
to read what it stored), on SQLite or PostgreSQL alike."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

import psycopg


def execute(db_url: str, statement: str) -> list[tuple[Any, ...]]:
    """Runs one statement in its own transaction, committed; answers its rows."""
    if db_url.startswith("sqlite:///"):
        path = db_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            return conn.execute(statement).fetchall()
    with psycopg.connect(db_url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def missing_table_message(db_url: str, table: str) -> str:
    """What the database says of a table that is not there."""
    if db_url.startswith("sqlite"):
        return f"no such table: {table}"
    return f'relation "{table}" does not exist'
