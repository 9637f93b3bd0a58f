"""The SQLite database is its owner's only (entities_svc/db.py): a new one is made 0600
in a 0700 directory, and one left readable by others is narrowed, side files included."""

from __future__ import annotations

import os
import sqlite3
import stat

from entities_svc.db import close_database, open_database


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_database_and_its_wal_are_the_owners_only(tmp_path):
    path = tmp_path / "state" / "bob.db"
    database = open_database(f"sqlite:///{path}")
    try:
        database.execute_sql("CREATE TABLE probe (x)")  # a write: the WAL file exists
        assert {p.name: _mode(p) for p in path.parent.iterdir()} == {
            "bob.db": 0o600,
            "bob.db-wal": 0o600,
            "bob.db-shm": 0o600,
        }
        assert _mode(path.parent) == 0o700
    finally:
        close_database(database)


def test_a_database_left_readable_by_others_is_narrowed_with_its_side_files(tmp_path):
    # Given a database another version wrote world-readable, its WAL still there
    path = tmp_path / "bob.db"
    holder = sqlite3.connect(path)
    holder.execute("PRAGMA journal_mode=wal")
    holder.execute("CREATE TABLE old (x)")
    holder.execute("INSERT INTO old VALUES (1)")
    holder.commit()
    for suffix in ("", "-wal", "-shm"):
        os.chmod(f"{path}{suffix}", 0o644)

    # When entities opens it
    database = open_database(f"sqlite:///{path}")
    try:
        # Then none of its files is readable by others, and its content is intact
        assert [_mode(f"{path}{s}") for s in ("", "-wal", "-shm")] == [0o600] * 3
        assert database.execute_sql("SELECT x FROM old").fetchall() == [(1,)]
    finally:
        close_database(database)
        holder.close()
