"""`python -m bench [--quick] [scenario ...]`: prints the table, writes bench/results.json."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu, load, pipelines, scale
from bench.report import Row, table, write_json
from devcluster.test_image import ensure_image

RESULTS = Path(__file__).resolve().parent / "results.json"


def scenarios(quick: bool) -> dict[str, callable]:
    return {
        "steps": lambda d: pipelines.step_overhead(d, reps=3 if quick else 10),
        "latency": lambda d: pipelines.single_step_latency(d, runs=10 if quick else 30),
        "throughput": lambda d: pipelines.throughput(d, count=40 if quick else 200),
        "logs": lambda d: load.logs(d, lines=100_000 if quick else 1_000_000),
        "api": lambda d: load.api_status_load(d, runs=100_000, seconds=5 if quick else 10),
        "queueing": lambda d: load.queueing(d, count=1_000 if quick else 10_000),
        "cpu": lambda d: cpu.control_plane_cpu(d, count=40 if quick else 200),
        "scale": lambda d: scale.scale(d, count=50 if quick else 200),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("only", nargs="*", help="scenarios to run (default: all)")
    args = parser.parse_args(argv)
    available = scenarios(args.quick)
    chosen = args.only or list(available)
    unknown = set(chosen) - set(available)
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(available)}"
        )
    ensure_image()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bob-bench-") as tmp:
        for name in chosen:
            began = time.perf_counter()
            print(f"== {name} ...", flush=True)
            found = available[name](Path(tmp) / name)
            rows += found
            print(table(found), f"\n({time.perf_counter() - began:.0f} s)\n", flush=True)
    print(table(rows))
    write_json(rows, RESULTS)
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
