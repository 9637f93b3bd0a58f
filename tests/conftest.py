"""Fixtures for the real components: RabbitMQ (a fresh vhost per test), Docker (with the
local test image), and a fresh database per test, on SQLite and on PostgreSQL.

A missing broker, engine or PostgreSQL skips the tests that need it with the reason, except under
CI=true, where it fails them: CI must never go green by skipping.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
RABBIT_HOST = "127.0.0.1:5672"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true; run `make setup`)")
    pytest.skip(reason)


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def rabbitmq_available() -> None:
    try:
        ok = _rabbitmqctl("status").returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        _unavailable("RabbitMQ is not running")


@contextlib.contextmanager
def fresh_vhost() -> Iterator[str]:
    """An AMQP URL on a new vhost, deleted afterwards."""
    vhost = f"bob-test-{uuid.uuid4().hex[:12]}"
    assert _rabbitmqctl("add_vhost", vhost).returncode == 0
    assert _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").returncode == 0
    try:
        yield f"amqp://guest:guest@{RABBIT_HOST}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def rabbit_url(rabbitmq_available: None) -> Iterator[str]:
    """An AMQP URL on a vhost of this test's own."""
    with fresh_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def docker_client():
    import docker
    import docker.errors

    from devcluster.test_image import ensure_image

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(f"Docker engine is not reachable: {exc}")
    ensure_image(client)
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client) -> str:
    from devcluster.test_image import IMAGE

    return IMAGE


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """The name of a PostgreSQL database at the current schema (migrated once), which each
    test's database copies."""
    from devcluster import postgres

    why = postgres.unreachable()
    if why:
        _unavailable(why)
    from entities_svc.db import close_database, open_database

    url = postgres.create_database()
    try:
        close_database(open_database(url))
        yield postgres.name_of(url)
    finally:
        for dropped in _PG_DROPS:
            dropped.result()
        postgres.drop_database(url)


# Tests' databases are dropped here while the next tests run: a drop waits on the
# server's checkpoint, which costs the tests nothing if they need not wait for it.
_PG_DROPPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drop")
_PG_DROPS: list[Future[None]] = []


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, at the current schema."""
    from devcluster import postgres

    url = postgres.create_database(pg_template)
    yield url
    _PG_DROPS.append(_PG_DROPPER.submit(postgres.drop_database, url))


# Every test of the database runs on both: SQLite (the default) and PostgreSQL (deployed).
@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bob.db'}"
    return request.getfixturevalue("pg_url")
