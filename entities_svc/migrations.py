"""Schema versions: the database records which numbered migrations it has had, and every
start (and `python -m entities_svc migrate`) applies those it lacks, in order, in one
transaction, under a lock, so that two starts never apply one twice.

- A new database is made at the models' shape and recorded at the newest version.
- A database written before versions were kept (tables but no `schema_versions`) is the
  baseline: migration 1 brings it to the models (tables and columns added, rows intact),
  then the later ones apply.
- Columns are only ever added or widened, never renamed or dropped, so a database written
  by any earlier version opens with its rows intact.

Every change to the models needs a migration appended to MIGRATIONS (never renumber
one): a database already at the newest version is not looked at again. New tables and
columns only: `add_missing` (what migration 1 does, again). Write a migration so that it
holds on a database migration 1 has just brought to the current models: check what it
changes (migration 1 adds whatever the models have that the database lacks).
tests/entities/test_migrations.py keeps the models' shape at the newest version, and fails
when they change without one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from peewee import SQL, Database, Field, PostgresqlDatabase, SqliteDatabase
from playhouse.migrate import SchemaMigrator, migrate

from entities_svc import models
from entities_svc.clock import now_ms
from entities_svc.models import ClusterEvent, Run, Runner, StepResult

log = logging.getLogger(__name__)

VERSIONS_TABLE = "schema_versions"
# pg_advisory_xact_lock's key for migrating: any constant, the same in every process.
PG_LOCK_KEY = 0x626F62_5343_48  # "bob" "SCH"

# Filled in for rows that predate a column, where its default would be wrong: before
# initiated_at_ms existed, started_at_ms held the time of the claim.
BACKFILL: dict[Field, Field] = {Run.initiated_at_ms: Run.started_at_ms}

# Times in milliseconds that were INTEGER columns: 32 bits on PostgreSQL, too narrow for
# today's time or a step of 25 days (SQLite's INTEGER has 64 bits whatever it is declared).
WIDENED_TO_BIGINT: tuple[Field, ...] = (
    StepResult.duration_ms,
    Run.created_at_ms,
    Run.started_at_ms,
    Run.completed_at_ms,
    Run.lease_expires_ms,
    Run.requeue_at_ms,
    Runner.last_seen_ms,
    # With its sequence: a journal id per status change would run out of 32 bits.
    ClusterEvent.id,
)


class SchemaTooNew(Exception):
    """Raised by upgrade() on a database a newer version migrated; entities refuses to
    start on it."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Database], None]


def add_missing(database: Database) -> None:
    """Brings a database of any earlier version to the models: missing tables created,
    missing columns added (with their defaults, or BACKFILL)."""
    database.create_tables(models.MODELS, safe=True)
    migrator = SchemaMigrator.from_database(database)
    for model in models.MODELS:
        table = model._meta.table_name
        present = {column.name for column in database.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in present:
                _add_column(migrator, table, field)


def _widen(database: Database) -> None:
    """The millisecond times and journal ids become 64-bit on PostgreSQL (a no-op on
    SQLite)."""
    if not isinstance(database, PostgresqlDatabase):
        return
    for field in WIDENED_TO_BIGINT:
        table = field.model._meta.table_name
        types = {c.name: c.data_type for c in database.get_columns(table)}
        if types.get(field.column_name) == "bigint":
            continue
        # The column's type alone (its NOT NULL and default stay); the sequence behind a
        # SERIAL key is widened next.
        database.execute_sql(
            f'ALTER TABLE "{table}" ALTER COLUMN "{field.column_name}" TYPE BIGINT'
        )
        sequence = database.execute_sql(
            "SELECT pg_get_serial_sequence(%s, %s)", (f'"{table}"', field.column_name)
        ).fetchone()[0]
        if sequence:
            database.execute_sql(f"ALTER SEQUENCE {sequence} AS BIGINT")
        log.info("widened %s.%s to bigint", table, field.column_name)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: missing tables and columns added", add_missing),
    Migration(2, "millisecond times and journal ids 64-bit on PostgreSQL", _widen),
    Migration(3, "webhooks: runs.trigger, pipeline_triggers, webhook_deliveries", add_missing),
    Migration(
        4,
        "schedules and notifications: runs.schedule_*, schedules, schedule_ticks, notifiers, "
        "notifications",
        add_missing,
    ),
)
NEWEST = MIGRATIONS[-1].version


@dataclass(frozen=True)
class Upgrade:
    """What upgrade() did."""

    # The version the database was at (0: none recorded) and is at now.
    before: int
    after: int
    applied: tuple[Migration, ...] = ()
    # A new database, made at the newest version.
    created: bool = False

    def describe(self) -> list[str]:
        """What it did, a line each, for an operator."""
        if self.created:
            return [f"new database: tables created at schema version {self.after}"]
        lines = [f"applied migration {m.version}: {m.name}" for m in self.applied]
        if not self.applied:
            lines.append(f"schema version {self.after}: nothing to apply")
        else:
            lines.append(f"schema version {self.before} -> {self.after}")
        return lines


def upgrade(database: Database) -> Upgrade:
    """Applies the migrations the database lacks, in one transaction under the migration
    lock."""
    with _locked(database):
        database.execute_sql(
            f'CREATE TABLE IF NOT EXISTS "{VERSIONS_TABLE}" ('
            '"version" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, '
            '"applied_at_ms" BIGINT NOT NULL)'
        )
        current = _current_version(database)
        if current == 0 and not database.table_exists(Run._meta.table_name):
            # A new database: made as the models are, which is every migration's result.
            database.create_tables(models.MODELS, safe=True)
            log.info("new database: tables created at schema version %d", NEWEST)
            _record(database, MIGRATIONS, "created at this version")
            return Upgrade(0, NEWEST, created=True)
        if current > NEWEST:
            # Written by a newer version: this one must not run on it (a rollback of the
            # code needs a restore of the database, or the newer version back).
            raise SchemaTooNew(
                f"the database is at schema version {current}, newer than "
                f"this version of entities knows ({NEWEST})"
            )
        pending = tuple(m for m in MIGRATIONS if m.version > current)
        for migration in pending:
            migration.apply(database)
            log.info("applied schema migration %d: %s", migration.version, migration.name)
        _record(database, pending)
        return Upgrade(current, max(current, NEWEST), pending)


def current_version(database: Database) -> int:
    """The newest migration recorded; 0 for a database that keeps no versions."""
    if not database.table_exists(VERSIONS_TABLE):
        return 0
    return _current_version(database)


def _current_version(database: Database) -> int:
    row = database.execute_sql(f'SELECT MAX("version") FROM "{VERSIONS_TABLE}"').fetchone()
    return int(row[0] or 0)


def _record(
    database: Database, applied: tuple[Migration, ...] | list[Migration], note: str = ""
) -> None:
    at = now_ms()
    for migration in applied:
        name = f"{migration.name} ({note})" if note else migration.name
        database.execute_sql(
            f'INSERT INTO "{VERSIONS_TABLE}" ("version", "name", "applied_at_ms") '
            f"VALUES ({database.param}, {database.param}, {database.param})",
            (migration.version, name, at),
        )


class _locked:
    """A transaction that holds the migration lock until it ends: SQLite's write lock
    (BEGIN IMMEDIATE), or PostgreSQL's transaction-scoped advisory lock. A second
    process starting at the same time waits, then finds nothing left to apply."""

    def __init__(self, database: Database) -> None:
        self._database = database
        immediate = isinstance(database, SqliteDatabase)
        self._transaction = database.atomic("IMMEDIATE") if immediate else database.atomic()

    def __enter__(self) -> None:
        self._transaction.__enter__()
        if isinstance(self._database, PostgresqlDatabase):
            self._database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))

    def __exit__(self, *exc: object) -> None:
        self._transaction.__exit__(*exc)


def _add_column(migrator: SchemaMigrator, table: str, field: Field) -> None:
    # One ALTER TABLE ... ADD COLUMN ... NOT NULL DEFAULT <value>: existing rows take the
    # default at once. (peewee's usual path adds the column as nullable and then rebuilds
    # the table to make it NOT NULL; on SQLite that drops the table its log lines and
    # steps refer to, which the foreign keys refuse.)
    column = field.clone()
    column.constraints = [*(field.constraints or ()), SQL(f"DEFAULT {_literal(field.default)}")]
    migrate(migrator.add_column(table, field.column_name, column, allow_not_null=True))
    source = BACKFILL.get(field)
    if source is not None:
        model = field.model
        model.update({field: source}).execute()
    log.info("added column %s.%s", table, field.column_name)


def _literal(value: object) -> str:
    """The SQL literal of a column default: DDL takes no parameters."""
    if isinstance(value, bool):
        # Keywords both SQLite (3.23+) and PostgreSQL take for their boolean columns.
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"a column added to an existing table needs a plain default, got {value!r}")
