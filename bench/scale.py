"""Scenario 8: how the control plane scales when runners are added. Runs per second of a
trivial step on shell runners (no container, so the control plane is what is measured),
one runner process against two, on SQLite and on PostgreSQL; with the CPU each service
spends per run (the runners share this machine's cores, so runs/s alone would hide what
adding one costs) and the database's share of it: entities' database threads
(entities-db, entities-read, read from /proc/<pid>/task) plus, on PostgreSQL, the server's
processes serving the database (and its WAL and checkpoint workers)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench import databases
from bench.cpu import broker_pid, cpu_s
from bench.harness import cluster, create_pipeline, wait_all_terminal
from bench.report import Row
from entities_svc.db import DB_THREAD, READ_THREAD

CAPACITY = 4  # runs at a time per runner
SHELL = {
    "BOB_RUNNER_TYPE": "shell",
    # The runs' uids: CAPACITY for each of two runners, and room to spare.
    "BOB_SHELL_RUNNER_UIDS": "900500-900599",
}
# Timers (sweeps, renewals, the broker's housekeeping) measured this long before the runs
# and taken off each share, as scenario 7 does.
IDLE_S = 3.0
STARTERS = 4  # concurrent start requests


def thread_cpu_s(pid: int, names: tuple[str, ...]) -> float:
    """CPU seconds the process's threads of these names have used so far."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() in names:
                total += cpu_s(pid, int(task.name))
        except FileNotFoundError:
            continue  # the thread ended
    return total


def scale(workdir: Path, count: int) -> list[Row]:
    rows: list[Row] = []
    for kind in databases.KINDS:
        for runners in (1, 2):
            rows += _measure(kind, runners, count, workdir / f"{kind}-{runners}")
    return rows


def _start(http: httpx.Client) -> str:
    r = http.post("/pipelines/start/groups/bench/names/scale", json={"runner/type": "shell"})
    if r.status_code != 202:
        raise RuntimeError(f"start answered {r.status_code}: {r.text}")
    return r.json()["message"]


def _first_start(http: httpx.Client, timeout_s: float = 60) -> str:
    """The first start: answered 422 until entities has seen a shell runner's lease."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _start(http)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _measure(kind: str, runners: int, count: int, workdir: Path) -> list[Row]:
    scenario = databases.label("8 scale", kind)
    with (
        databases.database(kind, workdir) as url,
        cluster(workdir, runners=runners, capacity=CAPACITY, db_url=url, runner_extra=SHELL) as c,
        httpx.Client(base_url=c.api_url, timeout=60) as http,
    ):
        create_pipeline(http, "scale", {"image": "none", "steps": [{"cmd": "true"}]})
        r = http.put("/pipelines/groups/bench/names/scale/runner-types", json=["shell"])
        r.raise_for_status()
        # Warm-up: connections made, statements prepared, every runner seen.
        first = _first_start(http)
        wait_all_terminal(http, "scale", {first, *(_start(http) for _ in range(2 * runners))})

        entities = c.entities.process.pid
        pids = {
            "api": [c.api.process.pid],
            "entities": [entities],
            "runners": [r.process.pid for r in c.runners],
            "broker": [broker_pid()],
            "postgresql": databases.server_pids(url) if kind == "postgresql" else [],
        }

        def sample() -> dict[str, float]:
            found = {name: sum(cpu_s(p) for p in ps) for name, ps in pids.items()}
            found["db threads"] = thread_cpu_s(entities, (DB_THREAD, READ_THREAD))
            return found

        before = sample()
        time.sleep(IDLE_S)
        idle_rate = {k: (v - before[k]) / IDLE_S for k, v in sample().items()}

        before, began = sample(), time.perf_counter()
        with ThreadPoolExecutor(STARTERS) as pool:
            run_ids = set(pool.map(lambda _: _start(http), range(count)))
        statuses = wait_all_terminal(http, "scale", run_ids)
        took, after = time.perf_counter() - began, sample()

    per_run = {
        name: max(0.0, after[name] - before[name] - idle_rate[name] * took) / count * 1000
        for name in before
    }
    services = ("api", "entities", "runners", "broker", "postgresql")
    total = sum(per_run[name] for name in services)
    database = per_run["db threads"] + per_run["postgresql"]
    passed = statuses.count("passed")
    setup = f"{runners} runner{'s' if runners > 1 else ''} x {CAPACITY}"
    rows = [
        Row(
            scenario,
            f"{setup}: {count} runs ({passed} passed)",
            count / took,
            "runs/s",
            target="all passed",
            met=passed == count,
        ),
        Row(scenario, f"{setup}: control plane CPU per run", total, "ms"),
    ]
    for name in services:
        if name == "postgresql" and kind != "postgresql":
            continue
        rows.append(
            Row(scenario, f"{setup}: {name}, per run", per_run[name], "ms", target="(share)")
        )
    rows.append(
        Row(
            scenario,
            f"{setup}: entities' database threads, per run",
            per_run["db threads"],
            "ms",
            target="(of entities)",
        )
    )
    rows.append(
        Row(
            scenario,
            f"{setup}: database share of the control plane",
            100 * database / total if total else 0.0,
            "%",
            target="(db threads + server)",
        )
    )
    return rows
