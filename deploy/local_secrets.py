"""The deployment's secrets, made on the operator's machine at the first deploy and kept
there, outside version control (`deploy/.secrets/<inventory name>/`, 0700; files 0600):

- `broker-users.json`: a password per RabbitMQ user (`bob-entities`, `bob-api`, one user
  per runner type), generated once;
- `database.json`: the PostgreSQL user's password, generated once;
- `secrets.key`: the Fernet key of entities' secret store;
- `pki/`: the cluster CA and one certificate per service (bob_common.pki), re-issued only
  when missing, near expiry, or (entities) no longer naming its address;
- `admin-token`: the API's bootstrap admin token, captured by the playbook.

`vars.json` hands the playbook what it needs from them (read with `-e @vars.json`):
the same file every run while nothing changes, so the hosts see no change.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.fernet import Fernet

from bob_common import broker_users, pki
from bob_common.private_files import private_dir, write_private
from deploy.inventory import Cluster

VHOST = "bob"
DB_NAME = "bob"
DB_USER = "bob"
BROKER_PORT = 5672
DB_PORT = 5432
ENTITIES_PORT = 7778


def _passwords(path: Path, names: list[str]) -> dict[str, str]:
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {name: kept.get(name) or secrets.token_urlsafe(24) for name in names}
    if wanted != kept:
        write_private(path, json.dumps({**kept, **wanted}, indent=2, sort_keys=True) + "\n")
    return wanted


def _sans(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in names.get_values_for_type(x509.IPAddress)} | set(
        names.get_values_for_type(x509.DNSName)
    )


def _certificates(pki_dir: Path, cluster: Cluster) -> None:
    """The CA and every service's certificate; entities' names every host name and
    address by which the inventory reaches it (clients check it against BOB_ENTITIES_ADDR)."""
    entities_host = cluster.hosts("entities")[0]
    entities_sans = sorted({entities_host, cluster.addresses[entities_host]})
    others = [pki.Identity(pki.API), pki.Identity(pki.TOOL, "read")]
    others += [pki.Identity(pki.RUNNER, r.runner_id) for r in cluster.runners]
    pki.ensure(pki_dir, others)
    entities = pki.Identity(pki.ENTITIES)
    cert = pki.files(pki_dir, entities).cert
    if pki.needs_issuing(pki_dir, entities) or _sans(cert) != set(entities_sans):
        pki.issue(pki_dir, entities, sans=entities_sans)


def prepare(secrets_dir: Path, cluster: Cluster) -> Path:
    """Makes what is missing in `secrets_dir` and writes its `vars.json`; answers its path."""
    private_dir(secrets_dir)
    secrets_dir.chmod(0o700)
    kinds = sorted({r.runner_type for r in cluster.runners})
    table = broker_users.table(kinds)
    users = {service: f"{broker_users.USER_PREFIX}{service}" for service in table}
    passwords = _passwords(secrets_dir / "broker-users.json", sorted(users.values()))
    database = _passwords(secrets_dir / "database.json", [DB_USER])
    key_file = secrets_dir / "secrets.key"
    if not key_file.exists():
        write_private(key_file, Fernet.generate_key().decode() + "\n")
    _certificates(secrets_dir / "pki", cluster)
    broker = cluster.address("broker")
    found: dict[str, Any] = {
        "bob_secrets_dir": str(secrets_dir.resolve()),
        "bob_vhost": VHOST,
        "bob_broker_users": [
            {
                "service": service,
                "user": users[service],
                "password": passwords[users[service]],
                "configure": perms.configure,
                "write": perms.write,
                "read": perms.read,
            }
            for service, perms in sorted(table.items())
        ],
        # Each service's BOB_QUEUE_URL, by its service name (runner-<type> for runners).
        "bob_queue_urls": {
            service: broker_users.queue_url(
                users[service], passwords[users[service]], VHOST, f"{broker}:{BROKER_PORT}"
            )
            for service in table
        },
        # Each host's address (bob_address, else ansible_host): where it binds and is reached.
        "bob_addresses": dict(cluster.addresses),
        "bob_db_name": DB_NAME,
        "bob_db_user": DB_USER,
        "bob_db_password": database[DB_USER],
        "bob_runner_ids": {r.host: r.runner_id for r in cluster.runners},
        "bob_runner_services": {
            r.host: broker_users.runner_service(r.runner_type) for r in cluster.runners
        },
    }
    out = secrets_dir / "vars.json"
    text = json.dumps(found, indent=2, sort_keys=True) + "\n"
    if not out.exists() or out.read_text() != text:
        write_private(out, text)
    return out
