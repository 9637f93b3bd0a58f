"""The node a runner runs on, as its lease renewals describe it (Bob's cluster info): host
name, cores, load and memory, read from the OS at each renewal."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from bob_pb import messages_pb2

log = logging.getLogger(__name__)

MEMINFO = "/proc/meminfo"


def parse_meminfo(text: str) -> Mapping[str, int]:
    """/proc/meminfo's fields in bytes: `MemTotal:  16318784 kB` gives
    {"MemTotal": 16710434816}. Fields without a unit (e.g. HugePages_Total) are counts and
    stay as they are; lines that do not parse are skipped."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        value = rest.split()
        if not sep or not value or not value[0].isdigit():
            continue
        number = int(value[0])
        if value[1:] == ["kB"]:  # the kernel's "kB" is KiB
            number *= 1024
        fields[name.strip()] = number
    return fields


def node_info(meminfo: str = MEMINFO) -> messages_pb2.NodeInfo:
    """This node now. What the OS does not tell (no /proc, no load average) stays 0."""
    cpu_count = os.cpu_count() or 0
    node = messages_pb2.NodeInfo(hostname=socket.gethostname(), cpu_count=cpu_count)
    try:
        if cpu_count:
            node.cpu_load = os.getloadavg()[0] / cpu_count
    except OSError:
        pass
    try:
        with open(meminfo, encoding="ascii", errors="replace") as f:
            memory = parse_meminfo(f.read())
    except OSError as exc:
        log.debug("no memory figures: %s", exc)
    else:
        node.memory_free_bytes = memory.get("MemAvailable", 0)
        node.memory_total_bytes = memory.get("MemTotal", 0)
    return node
