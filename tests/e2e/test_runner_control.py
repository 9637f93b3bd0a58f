"""The runner's control plane end to end, over HTTP, with one Docker runner of capacity 1:
stop and pause reach the run's container, and further jobs wait in the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id
from tests.support.containers import run_containers
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    runner = {"BOB_RUNNER_ID": runner_id("docker"), "BOB_RUNNER_CAPACITY": "1"}
    with runner_cluster(tmp_path_factory.mktemp("control"), [runner]) as bob:
        yield bob


def _containers(docker_client, run_id: str) -> list:
    return run_containers(docker_client, run_id)


def _no_container_left(docker_client, run_id: str) -> None:
    # A run reports its end, then removes its container.
    wait_until(
        lambda: not _containers(docker_client, run_id),
        timeout=30,
        what=f"the container of {run_id} to be removed",
    )


def _post(bob: Bob, action: str, name: str, run_id: str) -> None:
    r = bob.http.post(f"/pipelines/{action}/groups/dev/names/{name}/runs/{run_id}")
    assert r.status_code == 202, r.text


def test_a_stop_during_a_long_step_ends_the_run_stopped_promptly_with_its_container_gone(
    bob, unique, docker_client
):
    # Given a run busy in a long step
    bob.create_pipeline(
        "dev",
        unique,
        {"image": IMAGE, "steps": [{"cmd": "echo started; sleep 300"}, {"cmd": "echo never"}]},
    )
    run_id = bob.start("dev", unique)
    bob.wait_status(run_id, "running")
    assert _containers(docker_client, run_id)

    # When it is stopped
    asked = time.monotonic()
    _post(bob, "stop", unique, run_id)

    # Then it ends stopped within seconds, the next step never ran, the container is gone
    assert bob.wait_terminal(run_id, timeout=15) == "stopped"
    assert time.monotonic() - asked < 5
    assert "never" not in bob.log_lines(run_id)
    _no_container_left(docker_client, run_id)
    assert run_detail(bob, "dev", unique, run_id)["reason"] == "stopped by request"


def test_a_paused_run_can_be_stopped(bob, unique, docker_client):
    bob.create_pipeline(
        "dev", unique, {"image": IMAGE, "steps": [{"cmd": "echo started; sleep 300"}]}
    )
    run_id = bob.start("dev", unique)
    bob.wait_status(run_id, "running")
    _post(bob, "pause", unique, run_id)
    bob.wait_status(run_id, "paused")
    [container] = _containers(docker_client, run_id)
    assert container.status == "paused"

    _post(bob, "stop", unique, run_id)

    assert bob.wait_terminal(run_id, timeout=15) == "stopped"
    _no_container_left(docker_client, run_id)


def test_with_capacity_one_a_second_run_stays_pending_until_the_first_ends(bob, unique):
    # Given a runner with one slot and two runs started back to back
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "sleep 2"}]})
    first = bob.start("dev", unique)
    second = bob.start("dev", unique)

    # Then the second waits in the queue while the first runs
    bob.wait_status(first, "running")
    assert bob.status(second) == "pending"
    assert bob.wait_terminal(first) == "passed"
    assert bob.wait_terminal(second) == "passed"

    # And it started only once the first had ended
    ended = datetime.fromisoformat(run_detail(bob, "dev", unique, first)["completed-at"])
    began = datetime.fromisoformat(run_detail(bob, "dev", unique, second)["started-at"])
    assert began >= ended
