"""A followed log of a finished run is not held for ever: it closes after
BOB_API_FOLLOW_IDLE_S without new lines (its own cluster, to set the bound low)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.e2e.runner_cluster import runner_cluster

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"


def test_a_followed_log_of_a_finished_run_closes_once_idle_for_the_bound(
    rabbitmq_available, docker_client, tmp_path
):
    runner = {"BOB_RUNNER_ID": f"e2e-idle-{uuid.uuid4().hex[:8]}"}
    with runner_cluster(tmp_path, [runner], env={"BOB_API_FOLLOW_IDLE_S": "2"}) as bob:
        bob.create_pipeline("dev", "idle", {"image": IMAGE, "steps": [{"cmd": "echo once"}]})
        run_id = bob.start("dev", "idle")
        assert bob.wait_terminal(run_id) == "passed"

        # When a client follows the finished run's log and stays
        began = time.monotonic()
        url = f"{bob.cluster.api_url}/pipelines/logs/runs/{run_id}"
        with httpx.stream("GET", url, params={"follow": "true"}, timeout=30) as r:
            lines = list(r.iter_lines())
        took = time.monotonic() - began

    # Then it had the whole log, and the server ended the stream after the idle bound
    assert "once" in lines and lines[-1] == "[bob] run passed"
    assert 2 <= took < 20
