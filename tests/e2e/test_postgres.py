"""The cluster on PostgreSQL: entities keeps everything there, as a deployment does, and
a user's pipeline runs through the API, the queue and a Docker runner as on SQLite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet

from tests.e2e.runner_cluster import Bob, runner_cluster
from tests.support import raw_db

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"


@pytest.fixture(scope="module")
def pg_database(pg_template) -> Iterator[str]:
    from devcluster import postgres

    with postgres.fresh_database(pg_template) as url:
        yield url


@pytest.fixture(scope="module")
def bob_pg(rabbitmq_available, docker_client, tmp_path_factory, pg_database) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("pg-cluster")
    key_file = tmp / "secrets.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(Fernet.generate_key().decode() + "\n")
    env = {"BOB_DB_URL": pg_database, "BOB_SECRETS_KEY_FILE": str(key_file)}
    runner = {"BOB_RUNNER_ID": f"pg-{uuid.uuid4().hex[:8]}"}
    with runner_cluster(tmp, [runner], env=env) as bob:
        yield bob


def test_a_pipeline_runs_on_postgresql_and_its_password_is_never_logged(bob_pg, pg_database):
    # Given a pipeline on a cluster whose entities keeps its data in PostgreSQL
    name = f"p-{uuid.uuid4().hex[:8]}"
    body = {"image": IMAGE, "steps": [{"cmd": "seq 1 3"}, {"cmd": "echo done"}]}
    bob_pg.create_pipeline("dev", name, body)

    # When it is started twice
    runs = [bob_pg.start("dev", name) for _ in range(2)]

    # Then both pass, with their logs in order, served from PostgreSQL
    for run_id in runs:
        assert bob_pg.wait_terminal(run_id) == "passed"
        output = [line for line in bob_pg.log_lines(run_id) if not line.startswith("[bob]")]
        assert output == ["1", "2", "3", "done"]
    stored = raw_db.execute(
        pg_database, "SELECT id, status FROM runs WHERE \"group\" = 'dev' ORDER BY number"
    )
    assert [run_id for run_id, _ in stored] == runs
    r = bob_pg.http.get(f"/pipelines/groups/dev/names/{name}/runs")
    assert r.status_code == 200, r.text
    # And the database password appears nowhere in what the services logged
    password = urlsplit(pg_database).password
    assert password
    assert f":{password}@" not in bob_pg.log_path.read_text(errors="replace")
