"""Schema versions: a database written before versions were kept is the baseline and is
brought up to date with its rows intact, on SQLite and on PostgreSQL; `python -m
entities_svc migrate` applies what is missing once, whoever else migrates at the same
time, and then has nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bob_common.run_states import RunStatus as S
from entities_svc import journal, migrations, models, pipelines, run_queries, runners
from entities_svc.clock import now_ms
from entities_svc.db import close_database, open_database
from entities_svc.models import Run
from tests.support import raw_db

ROOT = Path(__file__).resolve().parents[2]

# The tables as a version before schema versions, pipeline documents, loggers, node info
# and the journal's run and pipeline columns made them on PostgreSQL (peewee's DDL of the
# time: SERIAL keys, INTEGER millisecond times), with a pipeline, a passed run, a runner
# and a journal whose ids reached the last 32-bit one.
OLD_POSTGRES = """
CREATE TABLE "pipelines" ("id" SERIAL NOT NULL PRIMARY KEY, "group" VARCHAR(255) NOT NULL,
  "name" VARCHAR(255) NOT NULL, "definition" TEXT NOT NULL, "paused" BOOLEAN NOT NULL);
CREATE UNIQUE INDEX "pipelines_group_name" ON "pipelines" ("group", "name");
CREATE TABLE "runs" ("number" SERIAL NOT NULL PRIMARY KEY, "id" VARCHAR(255) NOT NULL,
  "group" VARCHAR(255) NOT NULL, "name" VARCHAR(255) NOT NULL, "status" SMALLINT NOT NULL,
  "reason" TEXT NOT NULL, "runner_type" VARCHAR(255) NOT NULL,
  "runner_id" VARCHAR(255) NOT NULL, "attempt" INTEGER NOT NULL,
  "created_at_ms" INTEGER NOT NULL, "started_at_ms" INTEGER NOT NULL,
  "completed_at_ms" INTEGER NOT NULL, "last_seq" INTEGER NOT NULL,
  "lease_expires_ms" INTEGER NOT NULL, "desired" SMALLINT NOT NULL,
  "requeue_at_ms" INTEGER NOT NULL, "lost_attempts" INTEGER NOT NULL,
  "first_line_no" INTEGER NOT NULL, "pipeline" TEXT NOT NULL);
CREATE UNIQUE INDEX "runs_id" ON "runs" ("id");
CREATE TABLE "step_results" ("run_id" VARCHAR(255) NOT NULL REFERENCES "runs" ("id"),
  "index" INTEGER NOT NULL, "exit_code" INTEGER NOT NULL, "duration_ms" INTEGER NOT NULL,
  PRIMARY KEY ("run_id", "index"));
CREATE TABLE "log_lines" ("run_id" VARCHAR(255) NOT NULL REFERENCES "runs" ("id"),
  "line_no" INTEGER NOT NULL, "text" TEXT NOT NULL, "stream" SMALLINT NOT NULL,
  PRIMARY KEY ("run_id", "line_no"));
CREATE TABLE "runners" ("runner_id" VARCHAR(255) NOT NULL PRIMARY KEY,
  "runner_type" VARCHAR(255) NOT NULL, "capacity" INTEGER NOT NULL,
  "run_ids" TEXT NOT NULL, "last_seen_ms" INTEGER NOT NULL);
INSERT INTO "pipelines" ("group", "name", "definition", "paused") VALUES ('dev', 'old',
  '{"image": "busybox", "steps": [{"cmd": "true"}]}', FALSE);
INSERT INTO "runs" ("id", "group", "name", "status", "reason", "runner_type", "runner_id",
  "attempt", "created_at_ms", "started_at_ms", "completed_at_ms", "last_seq",
  "lease_expires_ms", "desired", "requeue_at_ms", "lost_attempts", "first_line_no",
  "pipeline") VALUES ('r-old', 'dev', 'old', 5, '', 'docker', 'docker-1', 1, 1000, 2000,
  3000, 4, 0, 0, 0, 0, 0, '{"image": "busybox", "steps": [{"cmd": "true"}]}');
INSERT INTO "step_results" VALUES ('r-old', 0, 0, 10);
INSERT INTO "log_lines" VALUES ('r-old', 0, 'hello', 1);
INSERT INTO "runners" VALUES ('docker-1', 'docker', 2, '[]', 5000);
CREATE TABLE "cluster_events" ("id" SERIAL NOT NULL PRIMARY KEY, "at_ms" BIGINT NOT NULL,
  "type" VARCHAR(255) NOT NULL, "reason" VARCHAR(255) NOT NULL,
  "kind" VARCHAR(255) NOT NULL, "message" TEXT NOT NULL);
SELECT setval(pg_get_serial_sequence('cluster_events', 'id'), 2147483646);
INSERT INTO "cluster_events" ("at_ms", "type", "reason", "kind", "message")
  VALUES (1000, 'Normal', 'PipelineCreated', 'Pipeline', 'Pipeline dev/old created');
"""


# The models' tables and columns (with peewee's type) at the newest migration: a change to
# the models without a migration would never reach a database already at that version.
MODELS_AT_NEWEST = (
    4,
    {
        "schedules": (
            "id:AUTO",
            "group:VARCHAR",
            "name:VARCHAR",
            "cron:VARCHAR",
            "timezone:VARCHAR",
            "next_at_ms:BIGINT",
        ),
        "schedule_ticks": (
            "id:BIGAUTO",
            "group:VARCHAR",
            "name:VARCHAR",
            "cron:VARCHAR",
            "timezone:VARCHAR",
            "tick_ms:BIGINT",
            "run_id:VARCHAR",
            "outcome:TEXT",
            "claimed_at_ms:BIGINT",
        ),
        "notifiers": (
            "name:VARCHAR",
            "url:VARCHAR",
        ),
        "notifications": (
            "id:BIGAUTO",
            "run_id:VARCHAR",
            "notifier:VARCHAR",
            "created_at_ms:BIGINT",
            "due_at_ms:BIGINT",
            "attempts:INT",
            "last_error:TEXT",
        ),
        "pipelines": (
            "id:AUTO",
            "group:VARCHAR",
            "name:VARCHAR",
            "definition:TEXT",
            "document:TEXT",
            "paused:BOOL",
            "runner_types:TEXT",
        ),
        "resource_providers": (
            "name:VARCHAR",
            "url:VARCHAR",
        ),
        "artifact_stores": (
            "name:VARCHAR",
            "url:VARCHAR",
        ),
        "loggers": (
            "name:VARCHAR",
            "url:VARCHAR",
        ),
        "runs": (
            "number:AUTO",
            "id:VARCHAR",
            "group:VARCHAR",
            "name:VARCHAR",
            "status:SMALLINT",
            "reason:TEXT",
            "runner_type:VARCHAR",
            "runner_id:VARCHAR",
            "attempt:INT",
            "created_at_ms:BIGINT",
            "initiated_at_ms:BIGINT",
            "initialized_at_ms:BIGINT",
            "started_at_ms:BIGINT",
            "completed_at_ms:BIGINT",
            "logger:VARCHAR",
            "last_seq:INT",
            "lease_expires_ms:BIGINT",
            "desired:SMALLINT",
            "control_owed:SMALLINT",
            "requeue_at_ms:BIGINT",
            "lost_attempts:INT",
            "first_line_no:INT",
            "status_event_id:BIGINT",
            "pipeline:TEXT",
            "claim_key:VARCHAR",
            "schedule_cron:VARCHAR",
            "schedule_timezone:VARCHAR",
            "schedule_tick_ms:BIGINT",
            "trigger:TEXT",
        ),
        "step_results": (
            "run_id:VARCHAR",
            "index:INT",
            "exit_code:INT",
            "duration_ms:BIGINT",
        ),
        "log_lines": (
            "run_id:VARCHAR",
            "line_no:INT",
            "text:TEXT",
            "stream:SMALLINT",
        ),
        "runners": (
            "runner_id:VARCHAR",
            "runner_type:VARCHAR",
            "capacity:INT",
            "run_ids:TEXT",
            "last_seen_ms:BIGINT",
            "hostname:VARCHAR",
            "cpu_count:INT",
            "cpu_load:FLOAT",
            "memory_free_bytes:BIGINT",
            "memory_total_bytes:BIGINT",
            "engine_problem:TEXT",
        ),
        "cluster_events": (
            "id:BIGAUTO",
            "at_ms:BIGINT",
            "type:VARCHAR",
            "reason:VARCHAR",
            "kind:VARCHAR",
            "message:TEXT",
            "run_id:VARCHAR",
            "run_status:SMALLINT",
            "group:VARCHAR",
            "name:VARCHAR",
        ),
        "secrets": (
            "name:VARCHAR",
            "ciphertext:TEXT",
            "created_at_ms:BIGINT",
            "updated_at_ms:BIGINT",
        ),
        "api_tokens": (
            "id:VARCHAR",
            "name:VARCHAR",
            "role:SMALLINT",
            "token_hash:VARCHAR",
            "created_at_ms:BIGINT",
            "expires_at_ms:BIGINT",
            "revoked_at_ms:BIGINT",
        ),
        "pipeline_triggers": (
            "id:AUTO",
            "pipeline_id:INT",
            "repository:VARCHAR",
        ),
        "webhook_deliveries": (
            "key:VARCHAR",
            "received_at_ms:BIGINT",
            "answer:TEXT",
        ),
    },
)


def _old_schema(url: str) -> str:
    if url.startswith("sqlite"):
        from tests.entities.test_schema import OLD_SCHEMA

        return OLD_SCHEMA
    return OLD_POSTGRES


@pytest.fixture(params=["sqlite", "postgresql"])
def old_db_url(request, tmp_path) -> Iterator[str]:
    """A database as an earlier version left it (no schema versions), with rows in it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        import sqlite3

        with sqlite3.connect(tmp_path / "old.db") as connection:
            connection.executescript(_old_schema(url))
        yield url
        return
    request.getfixturevalue("pg_template")  # PostgreSQL reachable (or skipped/failed)
    from devcluster import postgres

    with postgres.fresh_database() as url:
        for statement in OLD_POSTGRES.split(";"):
            if statement.strip():
                raw_db.execute(url, statement)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request, tmp_path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        return
    request.getfixturevalue("pg_template")  # PostgreSQL reachable (or skipped/failed)
    from devcluster import postgres

    with postgres.fresh_database() as url:
        yield url


def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOB_DB_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "entities_svc", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _versions(url: str) -> list[int]:
    return [row[0] for row in raw_db.execute(url, 'SELECT "version" FROM "schema_versions"')]


def test_an_old_database_is_migrated_at_start_with_its_rows_intact(old_db_url):
    # Given a database written before schema versions were kept
    # When entities opens it
    database = open_database(old_db_url)
    try:
        # Then every migration is recorded, once
        assert migrations.current_version(database) == migrations.NEWEST
        assert sorted(_versions(old_db_url)) == [m.version for m in migrations.MIGRATIONS]
        # And the old rows read as before, the new columns at their defaults
        stored = pipelines.get_pipeline("dev", "old")
        assert (stored.definition["image"], stored.document, stored.paused) == (
            "busybox",
            "",
            False,
        )
        run = run_queries.get_run("r-old")
        assert (run.status, run.started_at_ms, run.completed_at_ms) == (S.PASSED, 2000, 3000)
        assert run.initiated_at_ms == 2000  # backfilled from started_at_ms
        assert [(s.index, s.exit_code) for s in run.steps] == [(0, 0)]
        assert run_queries.get_logs("r-old", 0, 10) == ["hello"]
        [runner] = runners.list_runners()
        assert runner.runner_id == "docker-1"
        # And today's times fit where the old columns held 32 bits on PostgreSQL
        if old_db_url.startswith("postgresql"):
            widened = raw_db.execute(
                old_db_url,
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE data_type = 'bigint' AND table_schema = current_schema()",
            )
            expected = {
                f"{f.model._meta.table_name}.{f.column_name}" for f in migrations.WIDENED_TO_BIGINT
            }
            assert expected <= {name for (name,) in widened}
        now = now_ms()
        Run.update(lease_expires_ms=now, created_at_ms=now).where(Run.id == "r-old").execute()
        assert run_queries.get_run("r-old").created_at_ms == now
        # And the tables work, keys continuing after the old rows: on PostgreSQL past the
        # last 32-bit journal id
        pipelines.put_pipeline("dev", "new", stored.definition, '{"image": "busybox"}')
        created = journal.read_after(0, 10)[-1]
        assert (created.reason, created.name) == ("PipelineCreated", "new")
        if old_db_url.startswith("postgresql"):
            assert created.id == 2**31
    finally:
        close_database(database)


def test_migrate_command_applies_once_then_has_nothing_to_do(old_db_url):
    # When the command runs on a database of an earlier version
    first = _migrate(old_db_url)
    # Then it prints what it applied and exits 0
    assert first.returncode == 0, first.stderr
    applied = [line for line in first.stdout.splitlines() if line.startswith("applied")]
    assert applied == [f"applied migration {m.version}: {m.name}" for m in migrations.MIGRATIONS]
    # And run again, it has nothing to do, and still exits 0
    second = _migrate(old_db_url)
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"schema version {migrations.NEWEST}: nothing to apply\n"
    assert sorted(_versions(old_db_url)) == [m.version for m in migrations.MIGRATIONS]


def test_concurrent_migrations_apply_each_step_once(old_db_url):
    # Given three migrations of one old database started at once (as entities starting on
    # two hosts beside a deploy's command would)
    env = {**os.environ, "BOB_DB_URL": old_db_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "entities_svc", "migrate"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    # Then each succeeds, exactly one applied the migrations, the others found none to do
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    applying = [out for out, _ in outputs if "applied migration" in out]
    assert len(applying) == 1, outputs
    assert sorted(_versions(old_db_url)) == [m.version for m in migrations.MIGRATIONS]


def test_a_new_database_is_created_at_the_newest_version(empty_db_url):
    # When the command runs on a database with no tables
    first = _migrate(empty_db_url)
    # Then it makes them at the newest version, which it records
    assert first.returncode == 0, first.stderr
    assert first.stdout == (f"new database: tables created at schema version {migrations.NEWEST}\n")
    assert sorted(_versions(empty_db_url)) == [m.version for m in migrations.MIGRATIONS]
    second = _migrate(empty_db_url)
    assert second.stdout == f"schema version {migrations.NEWEST}: nothing to apply\n"


def test_a_database_of_a_newer_version_is_refused(db_url):
    # Given a database a newer version of entities migrated
    assert _migrate(db_url).returncode == 0
    raw_db.execute(
        db_url,
        'INSERT INTO "schema_versions" ("version", "name", "applied_at_ms") '
        "VALUES (999, 'from the future', 0)",
    )
    # Then this version refuses it, naming both versions, and changes nothing
    refused = _migrate(db_url)
    assert refused.returncode == 1
    assert (
        f"schema version 999, newer than this version of entities knows ({migrations.NEWEST})"
        in (refused.stderr)
    )
    with pytest.raises(migrations.SchemaTooNew):
        open_database(db_url)


def test_the_models_change_only_with_a_migration():
    shape = {
        model._meta.table_name: tuple(
            f"{f.column_name}:{f.field_type}" for f in model._meta.sorted_fields
        )
        for model in models.MODELS
    }
    version, expected = MODELS_AT_NEWEST
    assert (migrations.NEWEST, shape) == (version, expected), (
        "the models changed: append a migration to entities_svc/migrations.py MIGRATIONS "
        "(add_missing for new tables and columns), then update MODELS_AT_NEWEST here"
    )


def test_a_database_at_an_earlier_version_gets_only_the_later_migrations(empty_db_url):
    # Given a database at version 2, as this branch made it before webhooks, schedules and
    # notifications (their tables and columns dropped from a new one, versions 3 and later
    # forgotten)
    assert _migrate(empty_db_url).returncode == 0
    for statement in (
        'DROP TABLE "pipeline_triggers"',
        'DROP TABLE "webhook_deliveries"',
        'ALTER TABLE "runs" DROP COLUMN "trigger"',
        'DROP TABLE "schedules"',
        'DROP TABLE "schedule_ticks"',
        'DROP TABLE "notifiers"',
        'DROP TABLE "notifications"',
        'ALTER TABLE "runs" DROP COLUMN "schedule_cron"',
        'ALTER TABLE "runs" DROP COLUMN "schedule_timezone"',
        'ALTER TABLE "runs" DROP COLUMN "schedule_tick_ms"',
        'DELETE FROM "schema_versions" WHERE "version" >= 3',
    ):
        raw_db.execute(empty_db_url, statement)
    # When it is migrated
    done = _migrate(empty_db_url)
    # Then migrations 3 and later alone are applied, and their tables and columns are back
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("applied")] == [
        f"applied migration {m.version}: {m.name}" for m in migrations.MIGRATIONS[2:]
    ]
    database = open_database(empty_db_url)
    try:
        tables = set(database.get_tables())
        assert {"pipeline_triggers", "webhook_deliveries"} <= tables
        assert {"schedules", "schedule_ticks", "notifiers", "notifications"} <= tables
        columns = {c.name for c in database.get_columns("runs")}
        assert {"trigger", "schedule_cron", "schedule_timezone", "schedule_tick_ms"} <= columns
    finally:
        close_database(database)


def test_a_wrong_password_fails_the_command_in_one_line_without_the_password(pg_template):
    from urllib.parse import urlsplit

    from devcluster import postgres

    parts = urlsplit(postgres.admin_url())
    url = parts._replace(netloc=f"{parts.username}:Wr0ng-Pa55@{parts.hostname}:{parts.port}")
    refused = _migrate(url.geturl())
    assert refused.returncode == 1
    assert "cannot migrate the database: " in refused.stderr
    assert "password authentication failed" in refused.stderr
    assert "Wr0ng-Pa55" not in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
