"""One cluster for the client tests (the three services as real processes, with the
reference git resource provider, local artifact store and local logger), wendy
bootstrapped against it, and a git repository to build."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.cluster import free_port
from tests.clients.wendy import Wendy
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id
from tests.plugins.processes import make_repo

IMAGE = "bob-test/busybox:latest"


@pytest.fixture(scope="package")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("clients")
    logger = {"BOB_LOGGER_PORT": str(free_port()), "BOB_LOGGER_DIR": str(tmp / "logs")}
    with runner_cluster(
        tmp, [{"BOB_RUNNER_ID": runner_id("clients")}], plugins=True, env=logger
    ) as b:
        yield b


@pytest.fixture
def unique() -> str:
    """A fresh name, so tests sharing the cluster never collide."""
    return f"c-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def wendy(bob, tmp_path) -> Wendy:
    """wendy configured with the cluster's endpoint and bootstrapped from its /api.yaml,
    working in a directory of the test's own."""
    client = Wendy(bob.cluster.api_url, cwd=tmp_path)
    started = client.bootstrap()
    assert started.exit_code == 0, started.report()
    return client


@pytest.fixture(scope="package")
def repo(tmp_path_factory) -> Path:
    """A project as Bob's example has it: tests to run and a jar to build."""
    path = tmp_path_factory.mktemp("repos") / "bob-example"
    make_repo(
        path,
        {
            "build.gradle": "// the build\n",
            "test.sh": 'test -f build.gradle && echo "tests passed in $(basename $PWD)"\n',
            "build.sh": (
                'mkdir -p build/libs && echo "jar of $(basename $PWD)" '
                "> build/libs/bob-example-1.0-SNAPSHOT-all.jar\n"
            ),
        },
    )
    return path


@pytest.fixture(scope="package")
def plugins(bob) -> dict[str, str]:
    """The reference plugins' URLs: "git" (resource provider), "local" (artifact store),
    "logger-local" (logger)."""
    return dict(bob.cluster.plugin_urls)
