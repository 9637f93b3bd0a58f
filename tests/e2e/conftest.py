"""The three services as real processes on a vhost and SQLite file of their own, driven
over HTTP (tests/e2e/runner_cluster.py). One cluster per test module: tests use distinct
pipeline names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.runner_cluster import Bob, runner_cluster


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    runner_id = f"e2e-{uuid.uuid4().hex[:8]}"
    with runner_cluster(tmp_path_factory.mktemp("cluster"), [{"BOB_RUNNER_ID": runner_id}]) as b:
        yield b


@pytest.fixture
def unique() -> str:
    """A fresh pipeline name, so tests sharing a cluster never collide."""
    return f"p-{uuid.uuid4().hex[:8]}"
