"""The inventory check of `make deploy` (deploy/inventory.py): an inventory missing a
role, or with a runner host that cannot be deployed, is refused with an error naming the
problem, before any host is touched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from deploy import inventory
from deploy.inventory import InventoryError

ROOT = Path(__file__).resolve().parents[2]


def _listed(groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What `ansible-inventory --list` answers for these groups and host variables."""
    listed: dict[str, Any] = {group: {"hosts": hosts} for group, hosts in groups.items()}
    listed["all"] = {"children": ["ungrouped", *groups]}
    listed["_meta"] = {"hostvars": hostvars}
    return listed


FULL = {
    "broker": ["ctl"],
    "database": ["ctl"],
    "entities": ["ctl"],
    "api": ["ctl"],
    "runner": ["b1", "b2"],
}
VARS = {
    "ctl": {"ansible_host": "10.0.0.10"},
    "b1": {"ansible_host": "10.0.0.11", "bob_runner_type": "shell", "bob_runner_capacity": 3},
    "b2": {"ansible_host": "10.0.0.12", "bob_address": "10.1.0.12"},
}


def test_a_full_inventory_gives_roles_addresses_and_runners() -> None:
    cluster = inventory.check(_listed(FULL, VARS))

    assert cluster.hosts("runner") == ["b1", "b2"]
    assert cluster.address("entities") == "10.0.0.10"
    # bob_address wins over the SSH address
    assert cluster.addresses["b2"] == "10.1.0.12"
    assert [(r.runner_id, r.runner_type, r.capacity) for r in cluster.runners] == [
        ("shell-b1", "shell", 3),
        ("docker-b2", "docker", 2),
    ]


@pytest.mark.parametrize("role", inventory.REQUIRED_ROLES)
def test_an_inventory_missing_a_role_is_refused_naming_it(role: str) -> None:
    groups = {k: v for k, v in FULL.items() if k != role}

    with pytest.raises(InventoryError, match=f"no host has the role '{role}'"):
        inventory.check(_listed(groups, VARS))


def test_hosts_of_child_groups_count_for_the_role() -> None:
    listed = _listed({**FULL, "runner": []}, VARS)
    listed["runner"] = {"children": ["builders"]}
    listed["builders"] = {"hosts": ["b1"]}

    assert inventory.check(listed).hosts("runner") == ["b1"]


def test_two_brokers_and_a_bad_runner_are_all_named() -> None:
    groups = {**FULL, "broker": ["ctl", "b1"]}
    hostvars = {**VARS, "b2": {"bob_runner_capacity": 0, "bob_service_manager": "upstart"}}

    with pytest.raises(InventoryError) as err:
        inventory.check(_listed(groups, hostvars))

    text = str(err.value)
    assert "'broker' is held by 2 hosts (ctl, b1)" in text
    assert "host b2: bob_runner_capacity=0" in text
    assert "bob_service_manager='upstart'" in text


def test_two_runner_hosts_with_one_id_are_refused() -> None:
    hostvars = {**VARS, "b1": {"bob_runner_id": "same"}, "b2": {"bob_runner_id": "same"}}

    with pytest.raises(InventoryError, match="runner id 'same' is also b1's"):
        inventory.check(_listed(FULL, hostvars))


def test_make_deploy_refuses_a_missing_role_before_any_host(tmp_path: Path) -> None:
    """Through ansible-inventory and python -m deploy, as make deploy runs them: the
    hosts named do not exist, so getting past the check would fail otherwise."""
    inv = tmp_path / "nodb.yml"
    inv.write_text(
        textwrap.dedent(
            """\
            all:
              hosts:
                ctl: {ansible_host: 192.0.2.10}
                b1: {ansible_host: 192.0.2.11}
              children:
                broker: {hosts: {ctl: {}}}
                entities: {hosts: {ctl: {}}}
                api: {hosts: {ctl: {}}}
                runner: {hosts: {b1: {}}}
            """
        )
    )

    done = subprocess.run(
        [sys.executable, "-m", "deploy", str(inv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "BOB_DEPLOY_SECRETS": str(tmp_path / "secrets"),
        },
    )

    assert done.returncode == 2, done.stderr
    assert "no host has the role 'database'" in done.stderr
    assert "PLAY" not in done.stdout  # no playbook ran
    assert not (tmp_path / "secrets").exists()  # nothing was made either


def test_the_playbook_roles_and_example_parse() -> None:
    """Roles are included at run time (include_role), so a YAML error in one would only
    show on a deploy; every file must parse, and the playbook pass Ansible's check."""
    import yaml

    files = sorted((ROOT / "deploy").rglob("*.yml"))
    assert len(files) > 10
    for path in files:
        yaml.safe_load(path.read_text())
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "--syntax-check",
            "-i",
            str(ROOT / "deploy" / "inventory.example.yml"),
            str(ROOT / "deploy" / "site.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "ANSIBLE_CONFIG": str(ROOT / "deploy" / "ansible.cfg"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _render(template: str, dest: Path, params: dict[str, Any]) -> str:
    """A role's template rendered by Ansible itself (the template module, on this machine)."""
    import json

    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "-c",
            "local",
            "-m",
            "template",
            "-a",
            f"src={ROOT / template} dest={dest}",
            "-e",
            json.dumps(params),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "ANSIBLE_CONFIG": str(ROOT / "deploy" / "ansible.cfg"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dest.read_text()


RUNNER = {
    "svc": "bob-runner",
    "svc_description": "Bob's runner",
    "svc_env_file": "/etc/bob/runner.env",
    "svc_command": ["/opt/bob/bin/python", "-m", "runner_svc"],
    "svc_stop_timeout": 100,
    "bob_user": "bob",
    "bob_data_dir": "/var/lib/bob",
    "bob_prefix": "/opt/bob",
    "bob_log_dir": "/var/log/bob",
}


def test_both_service_managers_stop_a_runner_alike(tmp_path: Path) -> None:
    """The one switch: the systemd unit and the supervisor program of a service give it
    the same env file, user, restart-on-failure, SIGTERM to the main process alone and
    stop timeout; systemd itself finds nothing wrong in the unit."""
    import shutil

    unit = _render(
        "deploy/roles/bob_service/templates/unit.service.j2",
        tmp_path / "bob-runner.service",
        RUNNER,
    )
    program = _render(
        "deploy/roles/bob_service/templates/program.conf.j2", tmp_path / "bob-runner.conf", RUNNER
    )

    for line in (
        "EnvironmentFile=/etc/bob/runner.env",
        "User=bob",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "TimeoutStopSec=100",
    ):
        assert line in unit.splitlines(), line
    for line in (
        "command=/opt/bob/bin/bob-env /etc/bob/runner.env /opt/bob/bin/python -m runner_svc",
        "user=bob",
        "autorestart=unexpected",
        "exitcodes=0",
        "stopsignal=TERM",
        "stopasgroup=false",
        "stopwaitsecs=100",
    ):
        assert line in program.splitlines(), line
    if shutil.which("systemd-analyze"):
        done = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(tmp_path / "bob-runner.service")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        problems = [
            line
            for line in done.stderr.splitlines()
            if line.strip() and "is not executable" not in line  # /opt/bob is not here
        ]
        assert not problems, done.stderr


def test_bob_env_gives_a_command_the_env_file_as_systemd_reads_it(tmp_path: Path) -> None:
    env_file = tmp_path / "svc.env"
    env_file.write_text(
        '# a comment\nBOB_QUEUE_URL=amqp://u:p@10.0.0.1:5672/bob\n\nQUOTED="a b"\nEMPTY=\n'
        "export EXPORTED=x\n"
    )

    done = subprocess.run(
        ["/usr/bin/python3", str(ROOT / "deploy/roles/common/files/bob-env"), str(env_file), "env"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "KEPT": "1"},
    )

    found = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert found["BOB_QUEUE_URL"] == "amqp://u:p@10.0.0.1:5672/bob"
    assert found["QUOTED"] == "a b"
    assert found["EMPTY"] == ""
    assert found["EXPORTED"] == "x"
    assert found["KEPT"] == "1"
