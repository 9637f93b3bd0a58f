"""The fault-injection tests: real processes (tests/e2e/runner_cluster.py), each test with
a cluster, a vhost and a database of its own, and one fault injected into it. Each prints
its figures (accepted, terminal, passed, lost, duplicated), repeated in the terminal
summary at the end of the session.

They need RabbitMQ and Docker: missing, they skip locally and fail under CI=true."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import _unavailable
from tests.faults.harness import SHOWN, ContainerWatch
from tests.support.rabbit_node import RabbitNode, RabbitNodeError


@pytest.fixture(autouse=True)
def services(rabbitmq_available, docker_client) -> None:
    """Every fault test runs a cluster: RabbitMQ and Docker are needed."""


@pytest.fixture
def rabbit_node(request) -> Iterator[RabbitNode]:
    """A RabbitMQ node of this test's own, for tests that restart the broker or change its
    settings (`@pytest.mark.parametrize("rabbit_node", [{...}], indirect=True)`): the
    shared one stays as it is for everyone else."""
    node = RabbitNode(getattr(request, "param", None))
    try:
        node.start()
    except RabbitNodeError as exc:
        node.close()
        _unavailable(f"cannot run a RabbitMQ node of the test's own: {exc}")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def containers(docker_client) -> Iterator[ContainerWatch]:
    """The build containers Docker creates during the test, counted per run."""
    with ContainerWatch(docker_client) as watch:
        yield watch


@pytest.fixture
def unique() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault tests' figures at the end of the run, passed or not."""
    if SHOWN:
        terminalreporter.section("fault-injection figures")
        for line in SHOWN:
            terminalreporter.write_line(line)
