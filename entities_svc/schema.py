"""Bringing an existing database up to the models: missing tables are created, missing
columns added. Columns are only ever added (never renamed, retyped or dropped), so a
database written by an older version opens with its rows intact, and this step is a
no-op on a current one.
"""

from __future__ import annotations

import logging

from peewee import SQL, Database, Field
from playhouse.migrate import SchemaMigrator, migrate

from entities_svc import models
from entities_svc.models import Run

log = logging.getLogger(__name__)

# Filled in for rows that predate a column, where its default would be wrong: before
# initiated_at_ms existed, started_at_ms held the time of the claim.
BACKFILL: dict[Field, Field] = {Run.initiated_at_ms: Run.started_at_ms}


def upgrade(database: Database) -> None:
    """Creates missing tables and adds missing columns, in one transaction."""
    with database.atomic():
        database.create_tables(models.MODELS, safe=True)
        migrator = SchemaMigrator.from_database(database)
        for model in models.MODELS:
            table = model._meta.table_name
            present = {column.name for column in database.get_columns(table)}
            for field in model._meta.sorted_fields:
                if field.column_name not in present:
                    _add_column(migrator, table, field)


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
