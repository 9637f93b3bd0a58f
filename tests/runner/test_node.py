"""The node a heartbeat describes: /proc/meminfo read in bytes, and what the OS says."""

from __future__ import annotations

import os
import socket

from runner_svc.jobs.node import node_info, parse_meminfo

MEMINFO = """\
MemTotal:       16318784 kB
MemFree:          812344 kB
MemAvailable:   10485760 kB
Buffers:          204800 kB
HugePages_Total:       0
HugePages_Free:        7
Hugepagesize:       2048 kB
garbage line
Broken:          lots kB
"""


def test_meminfo_fields_are_read_in_bytes():
    fields = parse_meminfo(MEMINFO)
    assert fields["MemTotal"] == 16318784 * 1024
    assert fields["MemAvailable"] == 10485760 * 1024
    assert fields["Hugepagesize"] == 2048 * 1024


def test_meminfo_counts_stay_counts_and_bad_lines_are_skipped():
    fields = parse_meminfo(MEMINFO)
    assert (fields["HugePages_Total"], fields["HugePages_Free"]) == (0, 7)
    assert "Broken" not in fields and "garbage line" not in fields


def test_node_info_takes_memory_from_memavailable_and_memtotal(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    node = node_info(str(meminfo))
    assert node.memory_free_bytes == 10485760 * 1024  # MemAvailable, not MemFree
    assert node.memory_total_bytes == 16318784 * 1024


def test_node_info_names_the_host_its_cores_and_their_load():
    node = node_info()
    assert node.hostname == socket.gethostname()
    assert node.cpu_count == os.cpu_count()
    assert abs(node.cpu_load - os.getloadavg()[0] / os.cpu_count()) < 1.0
    assert 0 < node.memory_free_bytes <= node.memory_total_bytes


def test_a_node_without_meminfo_reports_no_memory(tmp_path):
    node = node_info(str(tmp_path / "missing"))
    assert (node.memory_free_bytes, node.memory_total_bytes) == (0, 0)
    assert node.hostname
