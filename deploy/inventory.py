"""What an inventory must say, checked before any host is touched: a host for every role
(broker, database, entities, api, runner), one broker, database and entities host, and
for each runner host a runner type, a capacity and an id that a certificate can carry.

The inventory is read as `ansible-inventory --list` answers it, so any format Ansible
reads (YAML, INI, a directory) is checked the same way.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bob_common import runner_types

# The roles every cluster needs, in the order they are deployed; `plugins` is optional.
REQUIRED_ROLES = ("broker", "database", "entities", "api", "runner")
OPTIONAL_ROLES = ("plugins",)
# Roles held by one host: one broker, one database, and entities, which owns the database
# and the run events alone.
SINGLE_ROLES = ("broker", "database", "entities")
SERVICE_MANAGERS = ("systemd", "supervisor")
# A runner id becomes a certificate's `runner/<id>` and a path segment (bob_common.pki).
_RUNNER_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class InventoryError(ValueError):
    """The inventory cannot be deployed; the message names what is missing or wrong."""


@dataclass(frozen=True)
class Runner:
    host: str
    runner_id: str
    runner_type: str
    capacity: int


@dataclass(frozen=True)
class Cluster:
    """An inventory's hosts by role, and the address each is reached at."""

    roles: Mapping[str, Sequence[str]]
    addresses: Mapping[str, str]
    runners: Sequence[Runner]
    api_port: int = 7777
    # The image of the check's pipeline on docker runners (bob_check_image).
    check_image: str = "busybox:latest"
    # The reference plugins' ports on the plugins host: git provider, store, logger.
    plugin_ports: tuple[int, int, int, int] = (8001, 8002, 8003, 8004)

    def hosts(self, role: str) -> Sequence[str]:
        return self.roles.get(role, ())

    def address(self, role: str) -> str:
        """The address of the (first) host holding `role`."""
        return self.addresses[self.hosts(role)[0]]


def load(inventory: Path) -> dict[str, Any]:
    """The inventory as `ansible-inventory --list` reads it (groups and host variables)."""
    if not inventory.exists():
        raise InventoryError(f"inventory {inventory} does not exist")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise InventoryError(f"ansible-inventory cannot read {inventory}: {done.stderr.strip()}")
    listed: dict[str, Any] = json.loads(done.stdout)
    return listed


def _group_hosts(listed: Mapping[str, Any], group: str) -> list[str]:
    """Hosts of a group and of its child groups, in inventory order, each once."""
    found: list[str] = []
    entry = listed.get(group) or {}
    for host in entry.get("hosts", []):
        if host not in found:
            found.append(host)
    for child in entry.get("children", []):
        found += [h for h in _group_hosts(listed, child) if h not in found]
    return found


def check(listed: Mapping[str, Any]) -> Cluster:
    """The cluster the inventory describes, or InventoryError naming every problem."""
    hostvars: Mapping[str, Mapping[str, Any]] = listed.get("_meta", {}).get("hostvars", {})
    roles = {role: _group_hosts(listed, role) for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES)}
    problems = [
        f"no host has the role '{role}' (a group '{role}' with at least one host)"
        for role in REQUIRED_ROLES
        if not roles[role]
    ]
    problems += [
        f"the role '{role}' is held by {len(roles[role])} hosts ({', '.join(roles[role])}); "
        "give it to one"
        for role in SINGLE_ROLES
        if len(roles[role]) > 1
    ]
    addresses: dict[str, str] = {}
    runners: list[Runner] = []
    for host in sorted({h for hosts in roles.values() for h in hosts}):
        hv = hostvars.get(host, {})
        address = str(hv.get("bob_address") or hv.get("ansible_host") or host)
        addresses[host] = address
        manager = hv.get("bob_service_manager", "systemd")
        if manager not in SERVICE_MANAGERS:
            problems.append(
                f"host {host}: bob_service_manager={manager!r} is not one of "
                f"{', '.join(SERVICE_MANAGERS)}"
            )
    ids: dict[str, str] = {}
    for host in roles["runner"]:
        try:
            runner = _runner(host, hostvars.get(host, {}))
        except InventoryError as exc:
            problems.append(str(exc))
            continue
        if runner.runner_id in ids:
            problems.append(
                f"host {host}: runner id {runner.runner_id!r} is also {ids[runner.runner_id]}'s"
            )
        ids[runner.runner_id] = host
        runners.append(runner)
    if problems:
        raise InventoryError("the inventory cannot be deployed:\n  - " + "\n  - ".join(problems))
    api_vars = hostvars.get(roles["api"][0], {})
    return Cluster(
        roles=roles,
        addresses=addresses,
        runners=runners,
        api_port=int(api_vars.get("bob_api_port", 7777)),
        check_image=str(api_vars.get("bob_check_image", "busybox:latest")),
        plugin_ports=_plugin_ports(
            hostvars.get(roles["plugins"][0], {}) if roles["plugins"] else {}
        ),
    )


def _plugin_ports(hv: Mapping[str, Any]) -> tuple[int, int, int, int]:
    return (
        int(hv.get("bob_git_provider_port", 8001)),
        int(hv.get("bob_artifact_store_port", 8002)),
        int(hv.get("bob_logger_port", 8003)),
        int(hv.get("bob_notifier_port", 8004)),
    )


def _runner(host: str, hv: Mapping[str, Any]) -> Runner:
    kind = str(hv.get("bob_runner_type", runner_types.DEFAULT))
    try:
        kind = runner_types.normalized([kind])[0]
    except ValueError as exc:
        raise InventoryError(f"host {host}: bob_runner_type: {exc}") from None
    raw_capacity = hv.get("bob_runner_capacity", 2)
    try:
        capacity = int(raw_capacity)
    except (TypeError, ValueError):
        capacity = 0
    if capacity < 1:
        raise InventoryError(f"host {host}: bob_runner_capacity={raw_capacity!r} is not 1 or more")
    runner_id = str(hv.get("bob_runner_id") or f"{kind}-{host}")
    if not _RUNNER_ID.fullmatch(runner_id):
        raise InventoryError(
            f"host {host}: runner id {runner_id!r} (bob_runner_id, or <type>-<host>) may hold "
            "only letters, digits, '.', '_' and '-'"
        )
    return Runner(host=host, runner_id=runner_id, runner_type=kind, capacity=capacity)
