"""Scenarios 4-6: a million log lines, status under concurrent load, queueing 10,000 starts.
4 and 5 run on SQLite and on PostgreSQL (rows "4 logs pg", "5 api pg"), each against
its floor measured on the same database."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from peewee import chunked

from bench import databases
from bench.harness import IMAGE, cluster, create_pipeline, rss_mb, start, wait_terminal
from bench.report import Row
from bob_common import runner_types
from bob_common.run_states import RunStatus
from devcluster.cluster import Cluster, free_port
from entities_svc import db, models

LINE_BYTES = 100


# Rows per peewee INSERT in the floor: 4 parameters each, far below SQLite's limit.
FLOOR_CHUNK = 500


def _insert_floor(url: str, lines: int, *, driver: bool = False) -> float:
    """Seconds to insert `lines` log lines in transactions of 10,000: by peewee's batched
    inserts (the floor), or with `driver`, one prepared INSERT run over all the rows by
    the database driver (executemany, as entities now stores them; for comparison)."""
    database = db.open_database(url)
    try:
        models.Pipeline.create(group="bench", name="floor", definition="{}")
        models.Run.create(
            id="r-floor",
            group="bench",
            name="floor",
            status=RunStatus.RUNNING,
            runner_type=runner_types.DEFAULT,
            created_at_ms=0,
            pipeline="{}",
        )
        text = "0" * (LINE_BYTES - 1)
        p = database.param
        insert = (
            f"INSERT INTO log_lines (run_id, line_no, text, stream) VALUES ({p}, {p}, {p}, {p})"
        )
        began = time.perf_counter()
        for batch in chunked(range(lines), 10_000):
            with database.atomic():
                if driver:
                    database.cursor().executemany(insert, [("r-floor", n, text, 1) for n in batch])
                    continue
                rows = [{"run": "r-floor", "line_no": n, "text": text, "stream": 1} for n in batch]
                for chunk in chunked(rows, FLOOR_CHUNK):
                    models.LogLine.insert_many(chunk).execute()
        return time.perf_counter() - began
    finally:
        db.close_database(database)


# How long the last line may take to be readable once its run has ended.
READABLE_WITHIN_S = 120.0


def logs(workdir: Path, lines: int) -> list[Row]:
    rows: list[Row] = []
    for kind in databases.KINDS:
        rows += _logs_on(kind, workdir / kind, lines)
    return rows


def _logs_on(kind: str, workdir: Path, lines: int) -> list[Row]:
    scenario = databases.label("4 logs", kind)
    with databases.database(kind, workdir / "floor") as url:
        floor_s = _insert_floor(url, lines)
    with databases.database(kind, workdir / "driver") as url:
        driver_s = _insert_floor(url, lines, driver=True)
    # awk prints `lines` lines of 99 digits and a newline: 100 bytes each.
    cmd = f"awk 'BEGIN {{ for (i = 1; i <= {lines}; i++) printf \"%0{LINE_BYTES - 1}d\\n\", i }}'"
    last = f"{lines:0{LINE_BYTES - 1}d}"
    with (
        databases.database(kind, workdir / "logs") as url,
        # The whole log is measured: above the default cap of a run's log (64 MiB).
        cluster(
            workdir / "logs",
            db_url=url,
            extra_env={"BOB_RUN_LOG_MAX_BYTES": str(2 * lines * LINE_BYTES)},
        ) as c,
        httpx.Client(base_url=c.api_url, timeout=60) as http,
    ):
        create_pipeline(http, "chatty", {"image": IMAGE, "steps": [{"cmd": cmd}]})
        began = time.perf_counter()
        run_id = start(http, "chatty")
        status = wait_terminal(http, run_id, timeout=1800)
        deadline = time.monotonic() + READABLE_WITHIN_S
        while True:
            window = http.get(f"/pipelines/logs/runs/{run_id}/offset/{lines - 1}/lines/100")
            if last in window.json()["message"]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"line {lines} of run {run_id} ({status}) not readable "
                    f"{READABLE_WITHIN_S:.0f} s after the run ended"
                )
            time.sleep(0.05)
        took = time.perf_counter() - began
        runner_peak = rss_mb(c.runners[0].process.pid)[1]
        entities_peak = rss_mb(c.entities.process.pid)[1]
    ours, floor = lines / took, lines / floor_s
    return [
        Row(
            scenario,
            f"{lines:,} lines readable ({status})",
            ours,
            "lines/s",
            floor,
            ours / floor,
            ">= 0.8x floor",
            ours / floor >= 0.8 and status == "passed",
        ),
        Row(scenario, "time until all readable", took, "s"),
        Row(
            scenario,
            "the driver's executemany, for comparison",
            lines / driver_s,
            "lines/s",
            floor,
            floor_s / driver_s,
            "(comparison)",
        ),
        Row(
            scenario,
            "runner peak RSS",
            runner_peak,
            "MB",
            target="<= 150 MB",
            met=runner_peak <= 150,
        ),
        Row(
            scenario,
            "entities peak RSS",
            entities_peak,
            "MB",
            target="<= 200 MB",
            met=entities_peak <= 200,
        ),
    ]


def _populate_runs(url: str, count: int) -> tuple[str, str]:
    """`count` passed runs, the last one running instead; (a passed id, the running id)."""
    database = db.open_database(url)
    try:
        definition = json.dumps({"image": IMAGE, "steps": [{"cmd": "true"}]})
        models.Pipeline.create(group="bench", name="many", definition=definition)
        ids = [f"r-{uuid.uuid4()}" for _ in range(count)]
        with database.atomic():
            for chunk in chunked(ids, 500):
                models.Run.insert_many(
                    [
                        {
                            "id": run_id,
                            "group": "bench",
                            "name": "many",
                            "status": RunStatus.RUNNING if run_id == ids[-1] else RunStatus.PASSED,
                            "runner_type": runner_types.DEFAULT,
                            "created_at_ms": n,
                            "pipeline": definition,
                        }
                        for n, run_id in enumerate(chunk)
                    ]
                ).execute()
        return ids[count // 2], ids[-1]
    finally:
        db.close_database(database)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, seconds: int, connections: int = 16) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) from wrk."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses from {url}")
    return rps, float(value) * _UNITS[unit]


def api_status_load(workdir: Path, runs: int, seconds: int) -> list[Row]:
    port = free_port()
    hello = subprocess.Popen(
        [sys.executable, "-m", "bench.hello_app", str(port), str(workdir / "hello.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        Cluster.wait_url(f"http://127.0.0.1:{port}/hello/x", 30)
        floor_rps, floor_p99 = wrk(f"http://127.0.0.1:{port}/hello/x", seconds)
    finally:
        hello.terminate()
        hello.wait(15)
    rows: list[Row] = []
    for kind in databases.KINDS:
        rows += _status_on(kind, workdir / kind, runs, seconds, floor_rps, floor_p99)
    return rows


def _status_on(
    kind: str, workdir: Path, runs: int, seconds: int, floor_rps: float, floor_p99: float
) -> list[Row]:
    scenario = databases.label("5 api", kind)
    with databases.database(kind, workdir / "api") as url:
        passed_id, running_id = _populate_runs(url, runs)
        with cluster(workdir / "api", runners=0, db_url=url) as c:
            rps, p99 = wrk(f"{c.api_url}/pipelines/status/runs/{passed_id}", seconds)
            # A run that may still change: answered from the statuses the API keeps
            # current from entities' journal.
            active_rps, active_p99 = wrk(f"{c.api_url}/pipelines/status/runs/{running_id}", seconds)
    ratio = rps / floor_rps
    return [
        Row(
            scenario,
            f"GET status, 16 conns, {runs:,} runs",
            rps,
            "req/s",
            floor_rps,
            ratio,
            ">= 0.7x floor",
            ratio >= 0.7,
        ),
        Row(scenario, "p99 latency", p99, "ms", floor_p99, p99 / floor_p99),
        Row(
            scenario,
            "GET status of a running run",
            active_rps,
            "req/s",
            floor_rps,
            active_rps / floor_rps,
            ">= 0.8x floor",
            active_rps / floor_rps >= 0.8,
        ),
        Row(scenario, "its p99 latency", active_p99, "ms", floor_p99, active_p99 / floor_p99),
    ]


async def _start_many(url: str, name: str, count: int, concurrency: int) -> int:
    accepted = 0
    todo = iter(range(count))
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def worker() -> None:
            nonlocal accepted
            for _ in todo:
                r = await http.post(f"/pipelines/start/groups/bench/names/{name}")
                accepted += r.status_code == 202

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted


def queueing(workdir: Path, count: int) -> list[Row]:
    env = {"BOB_QUEUE_MAX_JOBS": str(count * 2)}
    with (
        cluster(workdir / "queueing", runners=0, extra_env=env) as c,
        httpx.Client(base_url=c.api_url, timeout=30) as http,
    ):
        create_pipeline(http, "queued", {"image": IMAGE, "steps": [{"cmd": "true"}]})
        start(http, "queued")  # warm-up: connections and queue declared
        services = {"api": c.api, "entities": c.entities}
        before = {name: rss_mb(s.process.pid)[0] for name, s in services.items()}
        began = time.perf_counter()
        accepted = asyncio.run(_start_many(c.api_url, "queued", count, 16))
        took = time.perf_counter() - began
        after = {name: rss_mb(s.process.pid)[0] for name, s in services.items()}
    rows = [
        Row(
            "6 queueing",
            f"{count:,} starts ({accepted:,} accepted), no runner",
            accepted / took,
            "starts/s",
            met=accepted == count,
            target="all accepted",
        )
    ]
    for name in services:
        growth = after[name] / before[name]
        rows.append(
            Row(
                "6 queueing",
                f"{name} RSS before -> after",
                after[name],
                "MB",
                before[name],
                growth,
                "flat within 20%",
                growth <= 1.2,
            )
        )
    return rows
