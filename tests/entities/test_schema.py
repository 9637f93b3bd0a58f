"""A database written by an older version opens with its rows intact and the new columns
and tables added."""

from __future__ import annotations

import sqlite3

from bob_common.run_states import RunStatus as S
from entities_svc import journal, pipelines, run_queries, runners
from entities_svc.db import close_database, open_database

# The tables as the version before pipeline documents, loggers, INITIALIZED, node info
# and the journal created them (their SQL as SQLite kept it).
OLD_SCHEMA = """
CREATE TABLE "pipelines" ("id" INTEGER NOT NULL PRIMARY KEY, "group" VARCHAR(255) NOT NULL,
  "name" VARCHAR(255) NOT NULL, "definition" TEXT NOT NULL, "paused" INTEGER NOT NULL);
CREATE UNIQUE INDEX "pipelines_group_name" ON "pipelines" ("group", "name");
CREATE TABLE "runs" ("number" INTEGER NOT NULL PRIMARY KEY, "id" VARCHAR(255) NOT NULL,
  "group" VARCHAR(255) NOT NULL, "name" VARCHAR(255) NOT NULL, "status" INTEGER NOT NULL,
  "reason" TEXT NOT NULL, "runner_type" VARCHAR(255) NOT NULL,
  "runner_id" VARCHAR(255) NOT NULL, "attempt" INTEGER NOT NULL,
  "created_at_ms" INTEGER NOT NULL, "started_at_ms" INTEGER NOT NULL,
  "completed_at_ms" INTEGER NOT NULL, "last_seq" INTEGER NOT NULL,
  "lease_expires_ms" INTEGER NOT NULL, "desired" INTEGER NOT NULL,
  "requeue_at_ms" INTEGER NOT NULL, "lost_attempts" INTEGER NOT NULL,
  "first_line_no" INTEGER NOT NULL, "pipeline" TEXT NOT NULL);
CREATE UNIQUE INDEX "runs_id" ON "runs" ("id");
CREATE TABLE "step_results" ("run_id" VARCHAR(255) NOT NULL, "index" INTEGER NOT NULL,
  "exit_code" INTEGER NOT NULL, "duration_ms" INTEGER NOT NULL,
  PRIMARY KEY ("run_id", "index"), FOREIGN KEY ("run_id") REFERENCES "runs" ("id"));
CREATE TABLE "log_lines" ("run_id" VARCHAR(255) NOT NULL, "line_no" INTEGER NOT NULL,
  "text" TEXT NOT NULL, "stream" INTEGER NOT NULL, PRIMARY KEY ("run_id", "line_no"),
  FOREIGN KEY ("run_id") REFERENCES "runs" ("id"));
CREATE TABLE "runners" ("runner_id" VARCHAR(255) NOT NULL PRIMARY KEY,
  "runner_type" VARCHAR(255) NOT NULL, "capacity" INTEGER NOT NULL,
  "run_ids" TEXT NOT NULL, "last_seen_ms" INTEGER NOT NULL);
INSERT INTO "pipelines" VALUES (1, 'dev', 'old',
  '{"image": "busybox", "steps": [{"cmd": "true"}]}', 0);
INSERT INTO "runs" VALUES (1, 'r-old', 'dev', 'old', 5, '', 'docker', 'docker-1', 1,
  1000, 2000, 3000, 4, 0, 0, 0, 0, 0, '{"image": "busybox", "steps": [{"cmd": "true"}]}');
INSERT INTO "step_results" VALUES ('r-old', 0, 0, 10);
INSERT INTO "log_lines" VALUES ('r-old', 0, 'hello', 1);
INSERT INTO "runners" VALUES ('docker-1', 'docker', 2, '[]', 5000);
"""


def _columns(path, table: str) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')}


def test_an_old_database_keeps_its_rows_and_gains_the_new_columns(tmp_path):
    # Given a database written by the previous version
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(OLD_SCHEMA)

    # When this version opens it (twice: the second time there is nothing to add)
    close_database(open_database(f"sqlite:///{path}"))
    database = open_database(f"sqlite:///{path}")
    try:
        # Then the old rows read as before, with the new columns at their defaults
        stored = pipelines.get_pipeline("dev", "old")
        assert (stored.definition["image"], stored.document) == ("busybox", "")
        run = run_queries.get_run("r-old")
        assert (run.status, run.started_at_ms, run.completed_at_ms) == (S.PASSED, 2000, 3000)
        assert [(s.index, s.exit_code) for s in run.steps] == [(0, 0)]
        assert run_queries.get_logs("r-old", 0, 10) == ["hello"]
        assert (run.logger, run.initialized_at_ms) == ("", 0)
        # started_at_ms used to be the claim's time: it became initiated_at_ms too
        assert run.initiated_at_ms == 2000
        [runner] = runners.list_runners()
        assert (runner.runner_id, runner.node) == ("docker-1", None)
        # And the new columns and tables are there and usable
        assert {"document"} <= _columns(path, "pipelines")
        assert {"logger", "initiated_at_ms", "initialized_at_ms"} <= _columns(path, "runs")
        assert {"hostname", "cpu_load", "memory_total_bytes"} <= _columns(path, "runners")
        pipelines.put_pipeline("dev", "new", stored.definition, '{"image": "busybox"}')
        assert [e.reason for e in journal.read_after(0, 10)] == ["PipelineCreated"]
    finally:
        close_database(database)
