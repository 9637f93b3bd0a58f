"""When entities or RabbitMQ is down, the API answers 503 with a message within 5 s."""

from __future__ import annotations

import signal
import threading
import uuid

import httpx
import pytest

from devcluster.cluster import Cluster, Service, free_port
from tests.conftest import fresh_vhost

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
