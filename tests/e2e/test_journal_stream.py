"""The API's run statuses follow entities' journal over one stream (WatchEvents, mutual
TLS as devcluster sets it up): when entities stops, the stream ends at once (not after
the server's grace), the API stops answering changing statuses from memory, and it
follows on once entities is back, with the statuses it then sees current."""

from __future__ import annotations

import signal
import time
import uuid

import httpx
import pytest

from bob_pb import entities_pb2, entities_pb2_grpc
from devcluster.cluster import Cluster, free_port
from entities_svc.service import GRACE_S
from tests.conftest import fresh_vhost
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
PIPELINE = {"image": "bob-test/busybox:latest", "steps": [{"cmd": "true"}]}
FOLLOWING = "following entities' journal from event"


def _lines(cluster: Cluster, text: str) -> list[str]:
    return [line for line in cluster.api.lines if text in line and "stopped" not in line]


def test_the_api_follows_the_journal_stream_across_an_entities_restart(
    rabbitmq_available, tmp_path
):
    with fresh_vhost() as queue_url, (tmp_path / "cluster.log").open("w") as sink:
        env = {
            "BOB_QUEUE_URL": queue_url,
            "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
            "BOB_API_PORT": str(free_port()),
            "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
        }
        cluster = Cluster(env, runners=0, sink=sink)
        cluster.start()
        try:
            with httpx.Client(base_url=cluster.api_url, timeout=10) as http:
                name = f"j-{uuid.uuid4().hex[:8]}"
                r = http.post(f"/pipelines/groups/dev/names/{name}", json=PIPELINE)
                assert r.status_code == 202, r.text
                wait_until(lambda: _lines(cluster, FOLLOWING), what="the API to follow")

                # When entities stops, with the API's stream open
                stopping = time.monotonic()
                cluster.entities.signal(signal.SIGTERM)
                assert cluster.entities.wait(30) == 0
                took = time.monotonic() - stopping
                print(f"\njournal stream: entities stopped in {took:.2f} s with a watcher")
                # Then the stream did not hold it for its grace period, and the API knows
                # it has stopped following (the stream ended UNAVAILABLE)
                assert took < GRACE_S
                wait_until(
                    lambda: any("stopped following" in line for line in cluster.api.lines),
                    what="the API to notice",
                )
                assert any("UNAVAILABLE: entities is stopping" in ln for ln in cluster.api.lines)

                # When entities is back, the API follows on
                cluster.start_service(cluster.entities)
                wait_until(
                    lambda: len(_lines(cluster, FOLLOWING)) >= 2,
                    timeout=60,
                    what="the API to follow again",
                )
                r = http.post(f"/pipelines/start/groups/dev/names/{name}")
                assert r.status_code == 202, r.text
                run_id = r.json()["message"]

                # And a change it did not make itself (a runner's claim) reaches it
                with cluster.entities_channel("runner/j-runner") as channel:
                    stub = entities_pb2_grpc.EntitiesStub(channel)
                    claim = stub.ClaimRun(
                        entities_pb2.ClaimRunRequest(
                            run_id=run_id, attempt=1, runner_id="j-runner"
                        ),
                        timeout=10,
                    )
                assert claim.claimed

                def status() -> str:
                    return http.get(f"/pipelines/status/runs/{run_id}").json()["message"]

                wait_until(lambda: status() == "initializing", what="the claim to show")
        finally:
            cluster.stop()
