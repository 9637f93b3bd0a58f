"""Scenarios 1-3: step overhead, single-step latency, throughput."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import httpx

from bench import floors
from bench.harness import (
    IMAGE,
    cluster,
    create_pipeline,
    median,
    percentile,
    start,
    start_to_passed,
    wait_all_terminal,
)
from bench.report import Row


def step_overhead(workdir: Path, reps: int) -> list[Row]:
    client = docker.from_env()
    cmds = ["true"] * 10
    floor = median([floors.one_container_execs(client, cmds) for _ in range(reps)])
    commit_model = median(
        [floors.container_per_step_with_commit(client, cmds) for _ in range(max(1, reps // 2))]
    )
    with cluster(workdir / "steps") as c, httpx.Client(base_url=c.api_url, timeout=30) as http:
        create_pipeline(http, "ten", {"image": IMAGE, "steps": [{"cmd": c} for c in cmds]})
        start_to_passed(http, "ten")  # warm-up
        ours = median([start_to_passed(http, "ten") for _ in range(reps)])
    ratio = ours / floor
    return [
        Row(
            "1 step overhead",
            "10 steps, start -> passed",
            ours * 1000,
            "ms",
            floor * 1000,
            ratio,
            "<= 1.3x floor",
            ratio <= 1.3,
        ),
        Row(
            "1 step overhead",
            "container per step + commit",
            commit_model * 1000,
            "ms",
            floor * 1000,
            commit_model / floor,
            "(comparison)",
        ),
    ]


def single_step_latency(workdir: Path, runs: int) -> list[Row]:
    client = docker.from_env()
    floors.docker_run(client, "true")  # warm-up
    floor = median([floors.docker_run(client, "true") for _ in range(runs)])
    with cluster(workdir / "latency") as c, httpx.Client(base_url=c.api_url, timeout=30) as http:
        create_pipeline(http, "one", {"image": IMAGE, "steps": [{"cmd": "true"}]})
        start_to_passed(http, "one")
        took = [start_to_passed(http, "one") for _ in range(runs)]
    p50, p99 = median(took), percentile(took, 99)
    return [
        Row(
            "2 single step",
            f"p50 of {runs}",
            p50 * 1000,
            "ms",
            floor * 1000,
            p50 / floor,
            "<= 0.8x floor",
            p50 / floor <= 0.8,
        ),
        Row(
            "2 single step",
            f"p99 of {runs}",
            p99 * 1000,
            "ms",
            floor * 1000,
            p99 / floor,
            "<= 1.1x floor",
            p99 / floor <= 1.1,
        ),
    ]


def throughput(workdir: Path, count: int) -> list[Row]:
    client = docker.from_env()
    # The floor is measured before and after ours, and averaged: over the minutes this
    # takes, a shared machine's speed drifts by more than the margins measured here.
    floor_before = floors.docker_runs_per_s(client, count, concurrency=4)
    with (
        cluster(workdir / "throughput", runners=2, capacity=2) as c,
        httpx.Client(base_url=c.api_url, timeout=60) as http,
    ):
        create_pipeline(http, "many", {"image": IMAGE, "steps": [{"cmd": "true"}]})
        # Steady state, as for the floor's warm engine: one run per slot first, so the
        # runners' spare containers and connections are made before the clock starts.
        warm_up = {start(http, "many") for _ in range(4)}
        wait_all_terminal(http, "many", warm_up)
        began = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            run_ids = list(pool.map(lambda _: start(http, "many"), range(count)))
        # Watched as a dashboard would, the whole pipeline a few times a second: polling
        # 200 runs every few ms would take the cores from the system being measured.
        statuses = wait_all_terminal(http, "many", set(run_ids))
        ours = count / (time.perf_counter() - began)
    floor = (floor_before + floors.docker_runs_per_s(client, count, concurrency=4)) / 2
    passed = statuses.count("passed")
    ratio = ours / floor
    return [
        Row(
            "3 throughput",
            f"{count} runs, 2 runners x 2 ({passed} passed)",
            ours,
            "runs/s",
            floor,
            ratio,
            ">= 0.95x floor",
            ratio >= 0.95 and passed == count,
        ),
    ]
