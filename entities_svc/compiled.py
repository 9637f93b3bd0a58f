"""Statements of the hot paths (run events, status changes, the journal) built by peewee
once per database and then executed as text: peewee rebuilds a query's SQL on every call,
and that cost several times what SQLite takes to run it.

A statement is built with markers 1..n as its values; where each marker lands in the
parameters says which value goes where, so the order is peewee's own whatever it is.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from peewee import Database, Model

from entities_svc.models import database

# database -> name -> (SQL text, index of the value each parameter takes). Held by the
# database object itself (weakly), not its id(): a process that opens another database
# after closing one (the tests, SQLite then PostgreSQL) may get the same id for it.
_built: weakref.WeakKeyDictionary[Database, dict[Any, tuple[str, tuple[int, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def statement(
    name: Any, count: int, build: Callable[[list[int]], Any]
) -> tuple[str, tuple[int, ...]]:
    """The SQL of build(markers) for `count` values, and the value each parameter takes.
    ValueError when peewee's conversions hide the markers (a boolean field, say)."""
    built = _built.get(database.obj)
    if built is None:
        built = _built[database.obj] = {}
    found = built.get(name)
    if found is None:
        markers = list(range(1, count + 1))
        sql, params = build(markers).sql()
        order = tuple(_marker(p) - 1 for p in params)
        if sorted(order) != list(range(count)):
            raise ValueError(f"statement {name!r}: its values cannot be told apart")
        found = built[name] = (sql, order)
    return found


def _marker(param: object) -> int:
    try:
        return int(param)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def execute(name: Any, build: Callable[[list[int]], Any], values: Sequence[object]) -> Any:
    """Runs the statement built by build() with `values` in place of its markers; answers
    the cursor."""
    sql, order = statement(name, len(values), build)
    return database.execute_sql(sql, [values[i] for i in order])


def insert_id(name: Any, build: Callable[[list[int]], Any], values: Sequence[object]) -> int:
    """Runs an INSERT of one row and answers the row's generated id."""
    cursor = execute(name, build, values)
    if database.returning_clause:
        return int(cursor.fetchone()[0])
    return int(cursor.lastrowid)


def insert_many(
    name: Any, count: int, build: Callable[[list[int]], Any], rows: Iterable[Sequence[object]]
) -> None:
    """Runs an INSERT of one row (of `count` values) for each of `rows`, with executemany."""
    sql, order = statement(name, count, build)
    cursor = database.cursor()
    try:
        cursor.executemany(sql, [[row[i] for i in order] for row in rows])
    finally:
        cursor.close()


def insert_row(row: Model) -> int:
    """row.save(force_insert=True) for a new row of a model with an auto-increment key, with
    an INSERT built once per set of fields; answers the row's generated key."""
    model = type(row)
    pk = model._meta.primary_key
    fields = [f for f in model._meta.sorted_fields if f.name in row.__data__ and f is not pk]
    values = [f.db_value(row.__data__[f.name]) for f in fields]
    key = insert_id(
        (model.__name__, "insert", tuple(f.name for f in fields)),
        lambda m: model.insert(dict(zip(fields, m, strict=True))),
        values,
    )
    row._dirty.clear()
    return key


def select_rows(
    model: type[Model], name: Any, values: Sequence[object], build: Callable[[list[int]], Any]
) -> list[Model]:
    """Model instances of the rows build(markers) selects (every column of the model), as
    peewee would make them, without peewee building the query again."""
    cursor = execute((model.__name__, name), build, values)
    fields = [model._meta.columns[column[0]] for column in cursor.description]
    found = []
    for row in cursor.fetchall():
        instance = model(
            __no_default__=1,
            **{
                f.name: (v if v is None else f.python_value(v))
                for f, v in zip(fields, row, strict=True)
            },
        )
        instance._dirty.clear()
        found.append(instance)
    return found


def save_dirty(row: Model) -> None:
    """row.save(only=row.dirty_fields), with an UPDATE built once per set of fields."""
    fields = sorted(row.dirty_fields, key=lambda f: f.name)
    if not fields:
        return
    model = type(row)
    pk = model._meta.primary_key
    values = [f.db_value(getattr(row, f.name)) for f in fields]
    values.append(getattr(row, pk.name))
    try:
        sql, order = statement(
            (model.__name__, "update", tuple(f.name for f in fields)),
            len(values),
            lambda m: model.update(dict(zip(fields, m, strict=False))).where(pk == m[-1]),
        )
    except ValueError:
        row.save(only=fields)
        return
    database.execute_sql(sql, [values[i] for i in order])
    row._dirty.clear()
