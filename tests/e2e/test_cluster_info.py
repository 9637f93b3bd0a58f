"""The runners a cluster shows (Bob's cluster info) come from their lease renewals, the
one liveness signal: an idle runner, which has no lease to renew, still renews and is
seen, and keeps being seen."""

from __future__ import annotations

import pytest

from tests.e2e.runner_cluster import runner_cluster, runner_id
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def test_an_idle_runner_appears_in_cluster_info_through_its_renewals_alone(
    rabbitmq_available, tmp_path
):
    rid = runner_id("shell")
    runner = {"BOB_RUNNER_ID": rid, "BOB_RUNNER_TYPE": "shell", "BOB_RUNNER_CAPACITY": "2"}
    # runner_cluster waits until /cluster/info lists every runner.
    with runner_cluster(tmp_path, [runner], env={"BOB_HEARTBEAT_S": "0.5"}) as bob:

        def info() -> dict:
            r = bob.http.get("/cluster/info")
            assert r.status_code == 200, r.text
            return r.json()["message"][rid]

        # Given a runner that has never had a run
        first = info()
        assert (first["runner-type"], first["capacity"], first["runs"]) == ("shell", 2, [])
        assert first["hostname"] and first["cpu/count"] >= 1
        # Then it is seen again and again while it idles
        wait_until(
            lambda: info()["last-seen"] > first["last-seen"],
            timeout=30,
            what="a later renewal of the idle runner",
            describe=bob.logs_tail,
        )
