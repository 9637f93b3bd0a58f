"""A cluster for benchmarks (own vhost, own database) and the measuring tools they share."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from devcluster.cluster import Cluster, free_port

TERMINAL = {"passed", "failed", "stopped"}
IMAGE = "bob-test/busybox:latest"
POLL_S = 0.005
# How often a many-run scenario looks at its pipeline's runs.
WATCH_S = 0.25


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    name = f"bob-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


@contextlib.contextmanager
def cluster(
    workdir: Path,
    *,
    runners: int = 1,
    capacity: int = 2,
    extra_env: Mapping[str, str] | None = None,
    db_path: Path | None = None,
    db_url: str | None = None,
    runner_extra: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """The three services as real processes, logging to workdir/cluster.log: on the
    database of `db_url`, else the SQLite file `db_path` (else one in workdir); each runner
    with the variables of `runner_extra` too."""
    workdir.mkdir(parents=True, exist_ok=True)
    with vhost() as queue_url, (workdir / "cluster.log").open("a") as sink:
        env = {
            "BOB_QUEUE_URL": queue_url,
            "BOB_DB_URL": db_url or f"sqlite:///{db_path or workdir / 'bob.db'}",
            "BOB_API_PORT": str(free_port()),
            "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
            "BOB_RUNNER_CAPACITY": str(capacity),
            "BOB_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        # Ids of this cluster's own: a runner removes every container of its id when it
        # starts, so two benchmarks sharing the engine must not share runner ids.
        tag = uuid.uuid4().hex[:6]
        runner_env = [
            {"BOB_RUNNER_ID": f"bench-{tag}-{i}", **(runner_extra or {})} for i in range(runners)
        ]
        c = Cluster(env, sink=sink, runner_env=runner_env if runners else None, runners=runners)
        c.start()
        try:
            yield c
        finally:
            c.stop()


def create_pipeline(http: httpx.Client, name: str, body: dict) -> None:
    r = http.post(f"/pipelines/groups/bench/names/{name}", json=body)
    r.raise_for_status()


def start(http: httpx.Client, name: str) -> str:
    r = http.post(f"/pipelines/start/groups/bench/names/{name}")
    r.raise_for_status()
    return r.json()["message"]


def wait_terminal(
    http: httpx.Client, run_id: str, timeout: float = 600, poll_s: float = POLL_S
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http.get(f"/pipelines/status/runs/{run_id}").json()["message"]
        if status in TERMINAL:
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"run {run_id} did not end within {timeout}s")


def wait_all_terminal(
    http: httpx.Client, name: str, run_ids: set[str], timeout: float = 1800
) -> list[str]:
    """The final statuses of these runs of the pipeline, from its run list, read every
    WATCH_S until all have ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = http.get(f"/pipelines/groups/bench/names/{name}/runs").json()["message"]
        ended = [r["status"] for r in runs if r["run-id"] in run_ids and r["status"] in TERMINAL]
        if len(ended) == len(run_ids):
            return ended
        time.sleep(WATCH_S)
    raise TimeoutError(f"runs of {name} did not all end within {timeout}s")


def start_to_passed(http: httpx.Client, name: str) -> float:
    """Seconds from the start request to the moment the API reports `passed`."""
    began = time.perf_counter()
    run_id = start(http, name)
    status = wait_terminal(http, run_id)
    took = time.perf_counter() - began
    if status != "passed":
        raise RuntimeError(f"run {run_id} ended {status}")
    return took


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
