"""Conversions between the REST JSON of Bob's API and the protobuf messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from bob_common.run_states import status_name
from bob_pb import entities_pb2, messages_pb2, pipeline_pb2

# Keys of a posted pipeline that identify it rather than define it.
IDENTITY_KEYS = ("group", "name")


def scalar_text(value: Any) -> str:
    """The string form of a YAML/JSON scalar, as a shell sees it: `PORT: 8080` is "8080"
    and `DEBUG: true` is "true" (not Python's "True")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _texts(mapping: dict[str, Any] | None) -> dict[str, str]:
    return {key: scalar_text(value) for key, value in (mapping or {}).items()}


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict)  # {"secret": name}: the document's schema says so


def _split_vars(where: dict[str, Any]) -> dict[str, Any]:
    """`vars` as posted, split into plain vars (as strings) and secret_vars (variable ->
    secret name): a secret travels by name only."""
    posted = where.get("vars")
    if posted is None:
        return {}
    split: dict[str, Any] = {"vars": _texts({k: v for k, v in posted.items() if not _is_secret(v)})}
    if secret := {k: v["secret"] for k, v in posted.items() if _is_secret(v)}:
        split["secret_vars"] = secret
    return split


def _joined_vars(where: dict[str, Any]) -> None:
    """The reverse of _split_vars, in place: secret_vars back into vars as references."""
    if secret := where.pop("secret_vars", None):
        where["vars"] = {**where.get("vars", {}), **{k: {"secret": v} for k, v in secret.items()}}


def pipeline_from_json(body: dict[str, Any]) -> pipeline_pb2.Pipeline:
    """The pipeline to run from a body as Bob's clients post it: vars and params as
    strings, `needs_resource: ""` as no resource, group and name left out, and vars that
    reference a stored secret as secret_vars. The OpenAPI document has validated the
    shape; field names are Bob's on both sides."""
    definition = {k: v for k, v in body.items() if k not in IDENTITY_KEYS}
    definition.update(_split_vars(definition))
    definition["steps"] = [
        {
            **{k: v for k, v in step.items() if not (k == "needs_resource" and not v)},
            **_split_vars(step),
        }
        for step in definition.get("steps", [])
    ]
    definition["resources"] = [
        {**resource, **({"params": _texts(resource["params"])} if "params" in resource else {})}
        for resource in definition.get("resources", [])
    ]
    return json_format.ParseDict(definition, pipeline_pb2.Pipeline())


def pipeline_to_json(stored: entities_pb2.StoredPipeline) -> dict[str, Any]:
    """A pipeline as its client posted it, with its group and name, and `paused` only
    while it is paused: what a client sent is what it reads (wendy and the Terraform
    provider reconcile by comparing the two)."""
    if stored.document:
        body = json.loads(stored.document)
    else:  # stored before documents were kept
        body = json_format.MessageToDict(stored.pipeline, preserving_proto_field_name=True)
        for where in (body, *body.get("steps", [])):
            _joined_vars(where)
    body.update(group=stored.group, name=stored.name)
    if stored.paused:
        body["paused"] = True
    return body


def secret_info(info: entities_pb2.SecretInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "created-at": timestamp(info.created_at_ms),
        "updated-at": timestamp(info.updated_at_ms),
    }


def status_value(name: str) -> int:
    return messages_pb2.RunStatus.Value(name.upper())


def timestamp(ms: int) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def run_summary(run: entities_pb2.Run) -> dict[str, Any]:
    """A run in the keys of both of Bob's generations and ours: Bob's clients each read
    their own."""
    created, started, completed = (
        timestamp(run.created_at_ms),
        timestamp(run.started_at_ms),
        timestamp(run.completed_at_ms),
    )
    return {
        "run-id": run.id,
        "run_id": run.id,
        "status": status_name(run.status),
        "created-at": created,
        "scheduled-at": created,
        "initiated-at": timestamp(run.initiated_at_ms),
        "initialized-at": timestamp(run.initialized_at_ms),
        "started-at": started,
        "completed-at": completed,
        "started": started,
        "completed": completed,
    }


def run_detail(run: entities_pb2.Run) -> dict[str, Any]:
    detail = _run_detail(run)
    if run.HasField("scheduled_by"):  # issue 11: a schedule started it
        by = run.scheduled_by
        tick = timestamp(by.tick_ms)
        detail["scheduled-by"] = {"cron": by.cron, "timezone": by.timezone, "tick": tick}
    return detail


def _run_detail(run: entities_pb2.Run) -> dict[str, Any]:
    return {
        **run_summary(run),
        "group": run.group,
        "name": run.name,
        "reason": run.reason,
        "runner-type": run.runner_type,
        "runner-id": run.runner_id,
        "logger": run.logger,
        "attempt": run.attempt,
        **({"trigger": run_trigger(run.trigger)} if run.HasField("trigger") else {}),
        "steps": [
            {"index": s.index, "exit-code": s.exit_code, "duration-ms": s.duration_ms}
            for s in run.steps
        ],
    }


def run_trigger(trigger: entities_pb2.RunTrigger) -> dict[str, Any]:
    """The forge event that started a run (issue 11: webhooks)."""
    e = trigger.event
    return {
        "forge": trigger.forge,
        "delivery": trigger.delivery_id,
        "repository": e.repository,
        "kind": e.kind,
        "ref": e.ref,
        "target": e.target,
        "sha": e.sha,
        "sender": e.sender,
    }


def node(info: entities_pb2.RunnerInfo) -> dict[str, Any]:
    """A runner in Bob's cluster-info keys (its node's cpu and memory, its runs) and ours."""
    runs = list(info.run_ids)
    return {
        "cpu/count": info.node.cpu_count,
        "cpu/load": info.node.cpu_load,
        "mem/free": info.node.memory_free_bytes,
        "mem/total": info.node.memory_total_bytes,
        "bob/node-type": f"runner/{info.runner_type}",
        "bob/runs": runs,
        "hostname": info.node.hostname,
        "runner-id": info.runner_id,
        "runner-type": info.runner_type,
        "capacity": info.capacity,
        "runs": runs,
        "last-seen": timestamp(info.last_seen_ms),
        "engine-healthy": not info.engine_problem,
        "engine-problem": info.engine_problem,
    }
