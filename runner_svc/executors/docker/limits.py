"""A run's quotas as limits of its container, within the runner's defaults and ceilings
(runner_for), and how to tell that one of them was hit.

The limits are written in the Engine API's own HostConfig fields, so the same dict goes
into a container's creation and into the update of a spare taken for the run
(executor.py). Blocking calls: run them on the executor's pools.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from bob_common.config import RunnerSettings
from bob_common.quantities import format_memory
from runner_svc.spec import Limits

# The least CPU Docker gives a container (0.01 of a core): a smaller quota is raised to it.
MIN_NANO_CPUS = 10_000_000
# How long the engine's OOM event may come after the exit of the step it killed: the
# two reach the engine by separate paths.
OOM_EVENT_WAIT_S = 0.5
_KILLED = 128 + 9  # what a shell reports for a step ended by SIGKILL


class OverCeiling(ValueError):
    """A pipeline's quotas ask for more than the runner allows; says which and how much."""


def runner_for(limits: Limits, settings: RunnerSettings, cores: int, mem_total: int) -> Limits:
    """The limits a run gets on this runner: its quotas where it has them, else the
    runner's defaults (BOB_RUNNER_MEMORY, BOB_RUNNER_CPUS), and always the runner's PIDs
    limit. A default above the ceiling (BOB_RUNNER_MAX_*, else the engine's whole node of
    `cores` and `mem_total` bytes) is lowered to it; a quota above it raises OverCeiling."""
    max_mem = settings.container_max_memory or mem_total
    max_cpu = min(settings.container_max_cpus / cores, 1.0) if settings.container_max_cpus else 1.0
    if limits.mem_bytes > max_mem:
        raise OverCeiling(
            f"quotas.limits.mem asks for {format_memory(limits.mem_bytes)}, above this "
            f"runner's limit of {format_memory(max_mem)} (BOB_RUNNER_MAX_MEMORY)"
        )
    if limits.mem_request_bytes > max_mem:
        raise OverCeiling(
            f"quotas.requests.mem asks for {format_memory(limits.mem_request_bytes)}, above "
            f"this runner's limit of {format_memory(max_mem)} (BOB_RUNNER_MAX_MEMORY)"
        )
    if limits.cpu > max_cpu + 1e-9:
        raise OverCeiling(
            f"quotas.limits.cpu {limits.cpu:g} asks for {limits.cpu * cores:g} of the node's "
            f"{cores} cores, above this runner's limit of {max_cpu * cores:g} of them "
            "(BOB_RUNNER_MAX_CPUS)"
        )
    default_cpu = settings.container_cpus / cores if settings.container_cpus else 1.0
    # A request above the default raises the default to it: the engine refuses a
    # reservation above the limit.
    default_mem = max(settings.container_memory or max_mem, limits.mem_request_bytes)
    return replace(
        limits,
        mem_bytes=limits.mem_bytes or min(default_mem, max_mem),
        cpu=limits.cpu or min(default_cpu, max_cpu),
        pids=settings.container_pids,
    )


def host_config(limits: Limits, cores: int) -> dict[str, int]:
    """The HostConfig fields that hold a container to `limits` on a node of `cores`
    cores; empty for no limits."""
    fields: dict[str, int] = {}
    if limits.mem_bytes:
        # Swap equal to memory: no swap at all beyond the limit, so a build that goes
        # over it is killed at once (and told so) instead of crawling through swap.
        fields["Memory"] = fields["MemorySwap"] = limits.mem_bytes
    if limits.mem_request_bytes:
        fields["MemoryReservation"] = limits.mem_request_bytes
    if limits.cpu:
        # Bob's cpu is a fraction of all the node's cores; NanoCpus counts cores.
        nano_cpus = round(min(limits.cpu, 1.0) * cores * 1e9)
        fields["NanoCpus"] = min(max(nano_cpus, MIN_NANO_CPUS), cores * 10**9)
    if limits.pids:
        fields["PidsLimit"] = limits.pids
    return fields


def update(api: Any, container_id: str, fields: dict[str, int]) -> list[str]:
    """Applies `fields` to a running container and returns the engine's warnings. The
    SDK's update_container has no NanoCpus (the Engine API has it since 1.25), so this is
    the same request it makes, with the whole body."""
    response = api._post_json(api._url("/containers/{0}/update", container_id), data=fields)
    return api._result(response, True).get("Warnings") or []


def oom_killed(api: Any, container_id: str, exit_code: int) -> bool:
    """Whether the kernel killed a process of the container for going over its memory
    limit. The engine's "oom" events say so for any process of it (its State.OOMKilled
    only for its main process, and on some versions not even then), and it keeps its
    recent events, so this asks for the container's. A step ended by SIGKILL gets
    OOM_EVENT_WAIT_S for the event to arrive; another looks once. The count covers the
    container's life: a step before that survived the killing of one of its processes
    counts too, which is the rare case this accepts. `until` is this host's clock: an
    engine elsewhere is assumed to keep the same time (an `until` ahead of the engine's
    clock would hold the answer back until then)."""
    deadline = time.monotonic() + (OOM_EVENT_WAIT_S if exit_code == _KILLED else 0.0)
    while True:
        events = api.events(
            since=0,
            until=time.time(),
            decode=True,
            filters={"container": container_id, "event": "oom"},
        )
        try:
            if any(True for _ in events):
                return True
        finally:
            events.close()
        if time.monotonic() >= deadline:
            return bool(api.inspect_container(container_id)["State"].get("OOMKilled"))
        time.sleep(0.05)
