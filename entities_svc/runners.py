"""Runners, as their lease renewals describe them (the runner's one liveness signal, its
heartbeat): which exist, of which type, doing what."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from bob_common import runner_types
from entities_svc import compiled
from entities_svc.models import Runner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Node:
    """The machine a runner runs on, as its renewals describe it."""

    hostname: str
    cpu_count: int
    # One-minute load average per core (1.0 = every core busy).
    cpu_load: float
    memory_free_bytes: int
    memory_total_bytes: int


@dataclass(frozen=True)
class Heartbeat:
    """What a runner says of itself with a lease renewal, at `at_ms` (entities' clock)."""

    runner_id: str
    runner_type: str
    capacity: int
    run_ids: tuple[str, ...]
    at_ms: int
    # None when the runner does not describe its node (an older runner).
    node: Node | None = None
    # Why its engine is unusable (it takes no jobs meanwhile); "" when healthy.
    engine_problem: str = ""


_NODE_COLUMNS = ("hostname", "cpu_count", "cpu_load", "memory_free_bytes", "memory_total_bytes")


def record_heartbeats(beats: list[Heartbeat]) -> int:
    """Upserts the latest heartbeat of each runner; an older one never replaces a newer."""
    latest: dict[str, Heartbeat] = {}
    for beat in beats:
        if beat.runner_id not in latest or beat.at_ms >= latest[beat.runner_id].at_ms:
            latest[beat.runner_id] = beat
    for beat in latest.values():
        row = {
            "runner_type": beat.runner_type,
            "capacity": beat.capacity,
            "run_ids": json.dumps(list(beat.run_ids)),
            "last_seen_ms": beat.at_ms,
            "engine_problem": beat.engine_problem,
        }
        if beat.node is not None:
            row.update({column: getattr(beat.node, column) for column in _NODE_COLUMNS})
        updated = (
            Runner.update(**row)
            .where((Runner.runner_id == beat.runner_id) & (Runner.last_seen_ms <= beat.at_ms))
            .execute()
        )
        if not updated and not Runner.select().where(Runner.runner_id == beat.runner_id).exists():
            Runner.create(runner_id=beat.runner_id, **row)
            log.info("runner %s of type %s seen", beat.runner_id, beat.runner_type)
    return len(latest)


def list_runners() -> list[Heartbeat]:
    """Every runner seen, most recently seen first."""
    return [
        Heartbeat(
            row.runner_id,
            row.runner_type,
            row.capacity,
            tuple(json.loads(row.run_ids)),
            row.last_seen_ms,
            # Every heartbeat that describes a node names its host.
            Node(*(getattr(row, column) for column in _NODE_COLUMNS)) if row.hostname else None,
            row.engine_problem,
        )
        for row in Runner.select().order_by(Runner.last_seen_ms.desc())
    ]


def _types(_: list[int]) -> object:
    return Runner.select(Runner.runner_type).distinct()


def known_runner_types() -> set[str]:
    # Read by every start: its SQL is built once (compiled.py).
    types = {t for (t,) in compiled.execute("runner types", _types, ()).fetchall()}
    return types | {runner_types.DEFAULT}
