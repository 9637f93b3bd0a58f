"""Test data and settings shared by the entities tests."""

from __future__ import annotations

from typing import Any

from bob_common.config import CommonSettings, EntitiesSettings
from bob_common.run_states import RunStatus
from entities_svc import progress

# A claim's lease in the domain tests: long enough never to expire by itself.
LEASE_MS = 60_000

PIPELINE: dict[str, Any] = {
    "image": "busybox:musl",
    "steps": [{"cmd": "echo hello"}, {"cmd": "ls", "vars": {"K": "v"}}],
    "vars": {"LANG": "C"},
}


def make_settings(
    db_url: str, queue_url: str, batch_max: int = 100, **overrides: Any
) -> EntitiesSettings:
    common = CommonSettings(
        queue_url=queue_url,
        entities_addr="127.0.0.1:0",
        log_level="INFO",
        grpc_timeout_s=5.0,
        queue_max_jobs=100,
    )
    settings: dict[str, Any] = {
        "lease_s": 30.0,
        "max_attempts": 3,
        "sweep_s": 5.0,
        "events_keep": 100_000,
    }
    return EntitiesSettings(
        common=common,
        db_url=db_url,
        listen_addr="127.0.0.1:0",
        event_batch_max=batch_max,
        **{**settings, **overrides},
    )


def status_event(run_id: str, seq: int, status: RunStatus, reason: str = "", attempt: int = 1):
    body = progress.StatusChange(status, reason)
    return progress.RunEvent(run_id, attempt, seq, "runner-1", 1_000 * seq, body)


def log_event(run_id: str, seq: int, first: int, count: int, attempt: int = 1):
    lines = tuple(progress.Line(n, f"line {n}", 1) for n in range(first, first + count))
    return progress.RunEvent(run_id, attempt, seq, "runner-1", 0, progress.LogLines(lines))


def step_event(run_id: str, seq: int, index: int, exit_code: int = 0):
    body = progress.StepDone(index, exit_code, 10 * (index + 1))
    return progress.RunEvent(run_id, 1, seq, "runner-1", 0, body)
