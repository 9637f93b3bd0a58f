"""When entities or RabbitMQ is down, the API answers 503 with a message within 5 s; once
entities is back, the API follows its journal again."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import httpx
import pytest

from bob_pb import entities_pb2, entities_pb2_grpc
from devcluster.cluster import Cluster, Service, free_port
from entities_svc.service import GRACE_S
from tests.conftest import fresh_vhost
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

# The client gives up after 5 s: an API that hangs longer fails the test.
WITHIN_S = 5.0
PIPELINE = {"image": "bob-test/busybox:latest", "steps": [{"cmd": "true"}]}


@pytest.fixture
def backends_only(rabbitmq_available, tmp_path):
    """Entities and the API, no runner: these tests take backends away."""
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
            yield cluster
        finally:
            cluster.stop()


def test_a_hung_entities_service_gives_503_not_a_hang(backends_only):
    with httpx.Client(base_url=backends_only.api_url, timeout=WITHIN_S) as http:
        backends_only.entities.signal(signal.SIGSTOP)
        try:
            r = http.get("/pipelines/status/runs/r-any")
            health = http.get("/can-we-build-it")
        finally:
            backends_only.entities.signal(signal.SIGCONT)

    assert r.status_code == 503
    assert "Entities service unavailable" in r.json()["message"]
    assert r.headers["retry-after"]
    assert health.status_code == 503 and "entities" in health.json()["message"]


def test_a_stopped_entities_service_gives_503(backends_only):
    backends_only.entities.signal(signal.SIGTERM)
    backends_only.entities.wait(15)

    with httpx.Client(base_url=backends_only.api_url, timeout=WITHIN_S) as http:
        r = http.post("/pipelines/groups/dev/names/x", json=PIPELINE)

    assert r.status_code == 503
    assert "unavailable" in r.json()["message"]


def test_without_the_queue_a_start_is_503_and_leaves_no_run(tmp_path):
    # Given entities and an API server whose broker is unreachable (nothing listens there)
    port = free_port()
    env = {
        "BOB_QUEUE_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
        "BOB_API_PORT": str(port),
        "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
    }
    services = [Service("entities-noq", "entities_svc", env), Service("api-noq", "api_server", env)]
    lock = threading.Lock()
    with (tmp_path / "noq.log").open("w") as sink:
        for service in services:
            service.start(sink, lock)
        try:
            name = f"p-{uuid.uuid4().hex[:8]}"
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WITHIN_S) as http:
                Cluster.wait_url(f"http://127.0.0.1:{port}/api.yaml", 30, services)
                assert http.post(f"/pipelines/groups/dev/names/{name}", json=PIPELINE).is_success

                # When a run is started
                r = http.post(f"/pipelines/start/groups/dev/names/{name}")
                runs = http.get(f"/pipelines/groups/dev/names/{name}/runs").json()["message"]
                health = http.get("/can-we-build-it")
        finally:
            for service in reversed(services):
                service.signal(signal.SIGTERM)
                service.wait(15)

    # Then it is refused with a reason and a time to retry, and no phantom run stays
    assert r.status_code == 503, r.text
    assert "job queue is unavailable" in r.json()["message"]
    assert r.headers["Retry-After"]
    assert runs == []
    assert health.status_code == 503 and "queue" in health.json()["message"]


FOLLOWING = "following entities' journal from event"


def _api_lines(cluster: Cluster, text: str) -> list[str]:
    return [line for line in cluster.api.lines if text in line and "stopped" not in line]


def test_the_api_follows_the_journal_stream_across_an_entities_restart(backends_only):
    # The API's run statuses follow entities' journal over one stream (WatchEvents, mutual
    # TLS): when entities stops, the stream ends at once (not after the server's grace),
    # the API stops answering changing statuses from memory, and follows on once entities
    # is back, with the statuses it then sees current.
    with httpx.Client(base_url=backends_only.api_url, timeout=10) as http:
        name = f"j-{uuid.uuid4().hex[:8]}"
        r = http.post(f"/pipelines/groups/dev/names/{name}", json=PIPELINE)
        assert r.status_code == 202, r.text
        wait_until(lambda: _api_lines(backends_only, FOLLOWING), what="the API to follow")

        # When entities stops, with the API's stream open
        stopping = time.monotonic()
        backends_only.entities.signal(signal.SIGTERM)
        assert backends_only.entities.wait(30) == 0
        took = time.monotonic() - stopping
        print(f"\njournal stream: entities stopped in {took:.2f} s with a watcher")
        # Then the stream did not hold it for its grace period, and the API knows
        # it has stopped following (the stream ended UNAVAILABLE)
        assert took < GRACE_S
        wait_until(
            lambda: any("stopped following" in line for line in backends_only.api.lines),
            what="the API to notice",
        )
        assert any("UNAVAILABLE: entities is stopping" in ln for ln in backends_only.api.lines)

        # When entities is back, the API follows on
        backends_only.start_service(backends_only.entities)
        wait_until(
            lambda: len(_api_lines(backends_only, FOLLOWING)) >= 2,
            timeout=60,
            what="the API to follow again",
        )
        r = http.post(f"/pipelines/start/groups/dev/names/{name}")
        assert r.status_code == 202, r.text
        run_id = r.json()["message"]

        # And a change it did not make itself (a runner's claim) reaches it
        with backends_only.entities_channel("runner/j-runner") as channel:
            stub = entities_pb2_grpc.EntitiesStub(channel)
            claim = stub.ClaimRun(
                entities_pb2.ClaimRunRequest(run_id=run_id, attempt=1, runner_id="j-runner"),
                timeout=10,
            )
        assert claim.claimed

        def status() -> str:
            return http.get(f"/pipelines/status/runs/{run_id}").json()["message"]

        wait_until(lambda: status() == "initializing", what="the claim to show")
