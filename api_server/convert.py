"""Conversions between the REST JSON of Bob's API and the protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from bob_pb import entities_pb2, messages_pb2, pipeline_pb2

# Runs in these states may still change; those in TERMINAL never do.
ACTIVE = frozenset(
    {messages_pb2.PENDING, messages_pb2.INITIALIZING, messages_pb2.RUNNING, messages_pb2.PAUSED}
)
TERMINAL = frozenset({messages_pb2.PASSED, messages_pb2.FAILED, messages_pb2.STOPPED})


def pipeline_from_json(body: dict[str, Any]) -> pipeline_pb2.Pipeline:
    # The OpenAPI document has validated the shape; field names are Bob's on both sides.
    return json_format.ParseDict(body, pipeline_pb2.Pipeline())


def pipeline_to_json(stored: entities_pb2.StoredPipeline) -> dict[str, Any]:
    body = json_format.MessageToDict(stored.pipeline, preserving_proto_field_name=True)
    return {"group": stored.group, "name": stored.name, "paused": stored.paused, **body}


def status_name(status: int) -> str:
    return messages_pb2.RunStatus.Name(status).lower()


def status_value(name: str) -> int:
    return messages_pb2.RunStatus.Value(name.upper())


def timestamp(ms: int) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def run_summary(run: entities_pb2.Run) -> dict[str, Any]:
    return {
        "run-id": run.id,
        "status": status_name(run.status),
        "created-at": timestamp(run.created_at_ms),
        "started-at": timestamp(run.started_at_ms),
        "completed-at": timestamp(run.completed_at_ms),
    }


def run_detail(run: entities_pb2.Run) -> dict[str, Any]:
    return {
        **run_summary(run),
        "group": run.group,
        "name": run.name,
        "reason": run.reason,
        "runner-type": run.runner_type,
        "runner-id": run.runner_id,
        "attempt": run.attempt,
        "steps": [
            {"index": s.index, "exit-code": s.exit_code, "duration-ms": s.duration_ms}
            for s in run.steps
        ],
    }


def runner(info: entities_pb2.RunnerInfo) -> dict[str, Any]:
    return {
        "runner-id": info.runner_id,
        "runner-type": info.runner_type,
        "capacity": info.capacity,
        "runs": list(info.run_ids),
        "last-seen": timestamp(info.last_seen_ms),
    }
