"""The end-to-end harness: a cluster of the three services as real processes (the runners
a module asks for, each with its own variables, and when asked the reference plugins) on
free ports, a vhost and a database of its own, and Bob, a user's view of it over HTTP."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from api_server import bootstrap
from bob_common import broker_users, runner_types
from bob_common.config import AUTH_TOKENS, ApiSettings, CommonSettings
from devcluster.cluster import Cluster, free_port
from tests.conftest import fresh_vhost
from tests.waiting import wait_until

TERMINAL = {"passed", "failed", "stopped"}


class Bob:
    """A user's view of a running cluster: its HTTP API, and its logs when things fail."""

    def __init__(self, cluster: Cluster, log_path: Path, runner_id: str, queue_url: str) -> None:
        self.cluster = cluster
        self.queue_url = queue_url
        self.queue_max_jobs = CommonSettings.from_env(cluster.api.env).queue_max_jobs
        self.log_path = log_path
        self.runner_id = runner_id
        self.http = httpx.Client(base_url=cluster.api_url, timeout=30)
        # Service name -> its own broker URL, when started with service_users.
        self.queue_urls: dict[str, str] = {}
        # With BOB_API_AUTH=tokens: the admin token the API bootstrapped, which self.http
        # sends.
        self.admin_token: str | None = None

    def use_bootstrap_token(self) -> str:
        """Waits for the API's bootstrap admin token and sends it from now on."""
        token = wait_until(
            lambda: bootstrap.find_secret(self.cluster.api.lines),
            timeout=30,
            what="the API's bootstrap admin token",
            describe=self.logs_tail,
        )
        self.admin_token = token
        self.http.headers["Authorization"] = f"Bearer {token}"
        return token

    def logs_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "cluster log (tail):\n" + "\n".join(text[-lines:])

    def create_pipeline(self, group: str, name: str, body: dict) -> None:
        r = self.http.post(f"/pipelines/groups/{group}/names/{name}", json=body)
        assert r.status_code == 202, r.text

    def allow_runner_types(self, group: str, name: str, types: list[str]) -> None:
        """What an admin does before a pipeline may run on a type other than the default
        (the shell runner's, say)."""
        r = self.http.put(f"/pipelines/groups/{group}/names/{name}/runner-types", json=types)
        assert r.status_code == 200, r.text

    def start(self, group: str, name: str, **kwargs) -> str:
        r = self.http.post(f"/pipelines/start/groups/{group}/names/{name}", **kwargs)
        assert r.status_code == 202, r.text
        return r.json()["message"]

    def status(self, run_id: str) -> str:
        r = self.http.get(f"/pipelines/status/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()["message"]

    def wait_terminal(self, run_id: str, timeout: float = 60) -> str:
        def terminal():
            status = self.status(run_id)
            return status if status in TERMINAL else None

        return wait_until(
            terminal, timeout=timeout, what=f"run {run_id} to end", describe=self.logs_tail
        )

    def wait_status(self, run_id: str, status: str, timeout: float = 60) -> str:
        return wait_until(
            lambda: self.status(run_id) == status and status,
            timeout=timeout,
            what=f"run {run_id} to be {status}",
            describe=self.logs_tail,
        )

    def log_lines(self, run_id: str) -> list[str]:
        r = self.http.get(f"/pipelines/logs/runs/{run_id}/offset/0/lines/10000")
        assert r.status_code == 200, r.text
        return r.json()["message"]


@contextlib.contextmanager
def runner_cluster(
    tmp: Path,
    runners: list[Mapping[str, str]],
    *,
    plugins: bool = False,
    env: Mapping[str, str] | None = None,
    queue_url: str | None = None,
    service_users: bool = False,
) -> Iterator[Bob]:
    """`runners`: the extra variables of each runner; give each a BOB_RUNNER_ID. `env`:
    variables for every service, on top of the cluster's own (e.g. BOB_LEASE_S).
    `queue_url`: a vhost the caller made (e.g. to reach it through a proxy) instead of a
    fresh one. `service_users`: each service reaches the vhost as a broker user of its
    own, with the permissions of bob_common/broker_users.py, as under `make run`
    (Bob.queue_urls has their URLs); otherwise all share `queue_url`'s."""
    vhost = contextlib.nullcontext(queue_url) if queue_url else fresh_vhost()
    with vhost as queue_url, contextlib.ExitStack() as users:
        queue_urls = None
        if service_users:
            kinds = {r.get("BOB_RUNNER_TYPE") or runner_types.DEFAULT for r in runners}
            queue_urls = users.enter_context(users_on(queue_url, tmp, kinds))
        base = {
            "BOB_QUEUE_URL": queue_url,
            "BOB_DB_URL": f"sqlite:///{tmp / 'bob.db'}",
            "BOB_API_PORT": str(free_port()),
            "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
            "BOB_API_VALIDATE_RESPONSES": "true",
            "BOB_GIT_PROVIDER_PORT": str(free_port()),
            "BOB_ARTIFACT_STORE_PORT": str(free_port()),
            "BOB_ARTIFACT_DIR": str(tmp / "artifacts"),
            "BOB_LOGGER_PORT": str(free_port()),
            "BOB_LOGGER_DIR": str(tmp / "logs"),
            "BOB_NOTIFIER_PORT": str(free_port()),
            "BOB_NOTIFIER_FILE": str(tmp / "notifications.jsonl"),
            **(env or {}),
        }
        log_path = tmp / "cluster.log"
        with log_path.open("w") as sink:
            cluster = Cluster(
                base,
                sink=sink,
                runner_env=list(runners),
                plugins=plugins,
                queue_urls=queue_urls,
            )
            try:
                cluster.start()
            except RuntimeError:
                cluster.stop()
                sink.flush()
                pytest.fail(f"cluster did not start:\n{log_path.read_text()[-4000:]}")
            bob = Bob(cluster, log_path, runners[0]["BOB_RUNNER_ID"], queue_url)
            bob.queue_urls = queue_urls or {}
            try:
                if ApiSettings.from_env(cluster.api.env).auth == AUTH_TOKENS:
                    bob.use_bootstrap_token()
                wait_until(
                    lambda: _seen(bob) >= {r["BOB_RUNNER_ID"] for r in runners},
                    timeout=30,
                    what="every runner's first heartbeat",
                    describe=bob.logs_tail,
                )
                yield bob
            finally:
                bob.http.close()
                cluster.stop()


@contextlib.contextmanager
def users_on(queue_url: str, tmp: Path, runner_types_: set[str]) -> Iterator[dict[str, str]]:
    """The services' broker users on the vhost of `queue_url` (named after the vhost, since
    users are the broker's, not the vhost's), deleted afterwards; their URLs."""
    vhost = queue_url.rsplit("/", 1)[1]
    prefix = f"{vhost}-"
    urls = broker_users.provision(
        vhost, runner_types_, tmp / "broker-users.json", user_prefix=prefix
    )
    try:
        yield urls
    finally:
        broker_users.delete_users(urls, user_prefix=prefix)


def _seen(bob: Bob) -> set[str]:
    r = bob.http.get("/cluster/info")
    return set(r.json()["message"])


def runner_id(kind: str) -> str:
    return f"e2e-{kind}-{uuid.uuid4().hex[:8]}"


def run_detail(bob: Bob, group: str, name: str, run_id: str) -> dict:
    r = bob.http.get(f"/pipelines/groups/{group}/names/{name}/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()["message"]
