"""`python -m deploy [--version V] INVENTORY [ansible-playbook args...]` (`make deploy`):

1. the inventory is checked (every role has a host) before any host is touched;
2. the wheels are built (ours and every dependency's) into deploy/.build/;
3. the local secrets are made or reused (deploy/.secrets/<inventory name>/);
4. ansible-playbook site.yml brings every host to its state;
5. the running cluster is checked: /can-we-build-it, and one run on every runner host.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from deploy import cluster_check, inventory, local_secrets, wheels

HERE = Path(__file__).resolve().parent
RET_INVENTORY = 2
RET_PLAYBOOK = 3
RET_CHECK = 4


def secrets_dir_for(inventory_path: Path) -> Path:
    given = os.environ.get("BOB_DEPLOY_SECRETS")
    if given:
        return Path(given)
    return HERE / ".secrets" / inventory_path.name.split(".")[0]


def _recap(output: str) -> dict[str, int]:
    """Host -> `changed=` count from ansible-playbook's PLAY RECAP."""
    recap = output.rsplit("PLAY RECAP", 1)[-1]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", recap, re.M)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__)
    parser.add_argument("inventory", type=Path)
    parser.add_argument("--version", help="the version our wheel is built with (an upgrade)")
    parser.add_argument("--skip-check", action="store_true", help="no cluster check at the end")
    parser.add_argument(
        "--check-only", action="store_true", help="only check the deployed cluster (step 5)"
    )
    args, playbook_args = parser.parse_known_args(argv)

    try:
        cluster = inventory.check(inventory.load(args.inventory))
    except inventory.InventoryError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return RET_INVENTORY
    print(
        f"deploy: inventory {args.inventory}: "
        + "; ".join(f"{role} {', '.join(hosts)}" for role, hosts in cluster.roles.items() if hosts),
        flush=True,
    )

    if args.check_only:
        return _check(cluster, secrets_dir_for(args.inventory))
    tar = wheels.build(HERE / ".build", args.version)
    print(f"deploy: wheels {tar} sha256 {wheels.digest(tar)[:16]}", flush=True)
    secrets_dir = secrets_dir_for(args.inventory)
    vars_file = local_secrets.prepare(secrets_dir, cluster)
    print(f"deploy: secrets in {secrets_dir}", flush=True)

    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(args.inventory.resolve()),
        "-e",
        f"@{vars_file}",
        "-e",
        f"bob_wheels_tar={tar} bob_wheels_sha256={wheels.digest(tar)}",
        *playbook_args,
        str(HERE / "site.yml"),
    ]
    env = {**os.environ, "ANSIBLE_CONFIG": str(HERE / "ansible.cfg")}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        print(f"deploy: ansible-playbook failed (exit {proc.returncode})", file=sys.stderr)
        return RET_PLAYBOOK
    changed = {host: n for host, n in _recap("".join(lines)).items() if n}
    if changed:
        print("deploy: changed " + ", ".join(f"{h}={n}" for h, n in sorted(changed.items())))
    else:
        print("deploy: changed=0 on every host")
    if args.skip_check:
        return 0
    return _check(cluster, secrets_dir)


def _check(cluster: inventory.Cluster, secrets_dir: Path) -> int:
    try:
        cluster_check.run(cluster, secrets_dir)
    except cluster_check.CheckFailed as exc:
        print(f"deploy: cluster check failed: {exc}", file=sys.stderr)
        return RET_CHECK
    return 0


if __name__ == "__main__":
    sys.exit(main())
