"""What makes a second `make deploy` a no-op on the hosts: the local secrets are made once
and reused byte for byte, and the tar of wheels is the same bytes for the same wheels.
Also: the secrets are the operator's alone (0700/0600), and entities' certificate names
the address the inventory gives it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography import x509

from deploy import local_secrets, wheels
from deploy.inventory import Cluster, Runner


def _cluster(entities_address: str = "10.9.0.10") -> Cluster:
    return Cluster(
        roles={
            "broker": ["ctl"],
            "database": ["ctl"],
            "entities": ["ctl"],
            "api": ["ctl"],
            "runner": ["b1", "b2"],
            "plugins": [],
        },
        addresses={"ctl": entities_address, "b1": "10.9.0.11", "b2": "10.9.0.12"},
        runners=[Runner("b1", "docker-b1", "docker", 2), Runner("b2", "shell-b2", "shell", 1)],
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_made_once_private_and_reused_unchanged(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"

    first = local_secrets.prepare(secrets_dir, _cluster()).read_bytes()
    pki_files = {p: p.read_bytes() for p in (secrets_dir / "pki").rglob("*") if p.is_file()}
    second = local_secrets.prepare(secrets_dir, _cluster()).read_bytes()

    assert first == second
    assert pki_files == {p: p.read_bytes() for p in pki_files}  # nothing re-issued
    assert _mode(secrets_dir) == 0o700
    for name in ("broker-users.json", "database.json", "secrets.key", "vars.json"):
        assert _mode(secrets_dir / name) == 0o600, name
    found = json.loads(first)
    users = {u["user"]: u for u in found["bob_broker_users"]}
    # one user per service and per runner type, with the table's permissions
    assert set(users) == {"bob-entities", "bob-api", "bob-runner", "bob-runner-shell"}
    assert users["bob-api"]["configure"] == "^$"
    assert found["bob_queue_urls"]["runner-shell"].startswith("amqp://bob-runner-shell:")
    assert found["bob_queue_urls"]["runner-shell"].endswith("@10.9.0.10:5672/bob")
    assert found["bob_runner_ids"] == {"b1": "docker-b1", "b2": "shell-b2"}
    assert len({u["password"] for u in users.values()}) == 4


def test_entities_certificate_follows_its_inventory_address(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    local_secrets.prepare(secrets_dir, _cluster("10.9.0.10"))
    cert_path = secrets_dir / "pki" / "entities.crt"
    ca_before = (secrets_dir / "pki" / "ca.crt").read_bytes()

    local_secrets.prepare(secrets_dir, _cluster("10.9.0.99"))

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.9.0.99"]
    assert sans.get_values_for_type(x509.DNSName) == ["ctl"]
    assert (secrets_dir / "pki" / "ca.crt").read_bytes() == ca_before  # same CA


def test_the_wheel_tar_is_the_same_bytes_for_the_same_wheels(tmp_path: Path) -> None:
    built = tmp_path / "wheels"
    built.mkdir()
    (built / "b-1.0-py3-none-any.whl").write_bytes(b"b" * 100)
    (built / "a-1.0-py3-none-any.whl").write_bytes(b"a" * 100)

    first = wheels.digest(wheels._tar(built, tmp_path / "one.tar"))
    (built / "a-1.0-py3-none-any.whl").touch()  # a new time, same content
    again = wheels.digest(wheels._tar(built, tmp_path / "two.tar"))
    (built / "a-1.0-py3-none-any.whl").write_bytes(b"A" * 100)
    changed = wheels.digest(wheels._tar(built, tmp_path / "three.tar"))

    assert first == again
    assert changed != first
