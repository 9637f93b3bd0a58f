"""Rows of figures, the table printed at the end, and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    scenario: str
    metric: str
    value: float
    unit: str
    # The raw floor measured in the same run, and how the value compares with it.
    floor: float | None = None
    ratio: float | None = None
    target: str = ""
    # None when the row is informative only.
    met: bool | None = None


def table(rows: list[Row]) -> str:
    header = ("scenario", "metric", "value", "floor", "ratio", "target", "")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.scenario,
                r.metric,
                f"{r.value:,.1f} {r.unit}",
                "" if r.floor is None else f"{r.floor:,.1f} {r.unit}",
                "" if r.ratio is None else f"{r.ratio:.2f}x",
                r.target,
                {True: "ok", False: "MISSED", None: ""}[r.met],
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
