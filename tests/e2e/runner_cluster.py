"""A cluster for the runner's end-to-end tests: the services as in conftest.py, plus the
runners a module asks for (each with its own variables) and, when asked, the reference
plugins, on free ports with their artifacts under the module's temporary directory."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from devcluster.cluster import Cluster, free_port
from tests.conftest import fresh_vhost
from tests.e2e.conftest import Bob
from tests.waiting import wait_until


@contextlib.contextmanager
def runner_cluster(
    tmp: Path, runners: list[Mapping[str, str]], *, plugins: bool = False
) -> Iterator[Bob]:
    """`runners`: the extra variables of each runner; give each a BOB_RUNNER_ID."""
    with fresh_vhost() as queue_url:
        env = {
            "BOB_QUEUE_URL": queue_url,
            "BOB_DB_URL": f"sqlite:///{tmp / 'bob.db'}",
            "BOB_API_PORT": str(free_port()),
            "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
            "BOB_API_VALIDATE_RESPONSES": "true",
            "BOB_GIT_PROVIDER_PORT": str(free_port()),
            "BOB_ARTIFACT_STORE_PORT": str(free_port()),
            "BOB_ARTIFACT_DIR": str(tmp / "artifacts"),
        }
        log_path = tmp / "cluster.log"
        with log_path.open("w") as sink:
            cluster = Cluster(env, sink=sink, runner_env=list(runners), plugins=plugins)
            try:
                cluster.start()
            except RuntimeError:
                cluster.stop()
                sink.flush()
                pytest.fail(f"cluster did not start:\n{log_path.read_text()[-4000:]}")
            bob = Bob(cluster, log_path, runners[0]["BOB_RUNNER_ID"], queue_url)
            try:
                wait_until(
                    lambda: _seen(bob) >= {r["BOB_RUNNER_ID"] for r in runners},
                    timeout=30, what="every runner's first heartbeat", describe=bob.logs_tail,
                )
                yield bob
            finally:
                bob.http.close()
                cluster.stop()


def _seen(bob: Bob) -> set[str]:
    r = bob.http.get("/cluster/info")
    return {runner["runner-id"] for runner in r.json()["message"]["runners"]}


def runner_id(kind: str) -> str:
    return f"e2e-{kind}-{uuid.uuid4().hex[:8]}"


def run_detail(bob: Bob, group: str, name: str, run_id: str) -> dict:
    r = bob.http.get(f"/pipelines/groups/{group}/names/{name}/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()["message"]
