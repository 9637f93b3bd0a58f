"""The test hosts themselves: reachable over SSH, private installs and hostnames, a cut
that really cuts, and nothing left on the machine when they are down."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import _unavailable
from tests.deploy import hosts as hosts_mod
from tests.deploy.hosts import TestHosts


def _leftovers(index: int) -> list[str]:
    names = hosts_mod._all_netns() + hosts_mod._all_links()
    found = [n for n in names if n.startswith((f"bobh{index}-", f"bobh{index}v"))]
    found += [str(p) for p in Path(hosts_mod.TMP_BASE).glob(f"bobh{index}-*")]
    if index in hosts_mod._forward_rule_indexes():
        found.append(f"iptables FORWARD rule bobh{index}")
    if (hosts_mod.STATE_DIR / f"{index}.json").exists():
        found.append(f"state file {index}.json")
    return found


def test_two_hosts_are_private_reachable_cut_and_removed() -> None:
    marker = "written-by-test-hosts"
    with TestHosts(["alpha", "beta"]) as hosts:
        index = hosts.index
        pids = hosts.pids("alpha") + hosts.pids("beta")
        assert len(pids) >= 2, "each host has its sshd in its network namespace"

        names = {n: hosts.ssh(n, "hostname").stdout.strip() for n in ("alpha", "beta")}
        assert names == {"alpha": hosts["alpha"].hostname, "beta": hosts["beta"].hostname}
        assert names["alpha"] != names["beta"]

        hosts.ssh("alpha", f"echo {marker} > /opt/bob/probe && useradd -r bobprobe")
        assert hosts.ssh("alpha", "cat /opt/bob/probe").stdout.strip() == marker
        assert hosts.ssh("beta", "ls -A /opt/bob").stdout.strip() == ""
        assert hosts.ssh("beta", "id bobprobe", check=False).returncode != 0
        assert not Path("/opt/bob/probe").exists(), "the machine sees the host's /opt/bob"
        assert subprocess.run(["id", "bobprobe"], capture_output=True).returncode != 0
        # The hosts reach each other by name (RabbitMQ needs its own name to resolve).
        assert hosts["beta"].address in hosts.ssh("alpha", "getent hosts beta").stdout

        beta = hosts["beta"].address
        reach = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{beta}/22' && echo open"
        assert hosts.ssh("alpha", reach).stdout.strip() == "open"
        with hosts.partitioned("beta"):
            assert hosts.ssh("beta", "true", check=False, timeout=30).returncode != 0
            assert hosts.run("alpha", reach, check=False).stdout.strip() == ""
            # Still running inside, only cut off.
            assert hosts.run("beta", "hostname").stdout.strip() == hosts["beta"].hostname
        assert hosts.ssh("beta", "echo back").stdout.strip() == "back"
        assert hosts.run("alpha", reach).stdout.strip() == "open"

    assert _leftovers(index) == []
    assert not any(hosts_mod._pid_alive(p, None) and not _zombie(p) for p in pids)


def test_a_crashed_runs_hosts_are_removed_by_the_next() -> None:
    """An instance whose owner is gone (a killed test run) is torn down by the next up."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = TestHosts(["gamma"])
    stale.owner_pid = dead.pid
    stale.up()
    index = stale.index
    try:
        assert index in hosts_mod.cleanup_stale()
        assert _leftovers(index) == []
    finally:
        stale.down()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        _unavailable("the test hosts need root (network and mount namespaces)")
