"""A cluster's service identities: the CA and one certificate per service (entities, the
API, each runner for its own id) and the read-only tooling one, issued into a PKI
directory (`make run`: data/pki, kept and renewed across restarts; a test's cluster: a
temporary one), and the BOB_TLS_* variables that hand each service its own."""

from __future__ import annotations

import socket
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

from bob_common import pki, runner_types

READ_TOOL = pki.Identity(pki.TOOL, "read")


def tls_env(directory: Path, identity: pki.Identity) -> dict[str, str]:
    """The variables that make a service connect (or serve) as `identity`."""
    f = pki.files(directory, identity)
    return {"BOB_TLS_CA": str(f.ca), "BOB_TLS_CERT": str(f.cert), "BOB_TLS_KEY": str(f.key)}


def runner_identity(env: Mapping[str, str], index: int) -> pki.Identity:
    """The runner's id as the caller gave it (BOB_RUNNER_ID), else one per host and place
    in the cluster, the same at each start; the runner takes it from its certificate."""
    given = env.get("BOB_RUNNER_ID")
    if given:
        return pki.Identity(pki.RUNNER, given)
    kind = env.get("BOB_RUNNER_TYPE") or runner_types.DEFAULT
    return pki.Identity(pki.RUNNER, f"{kind}-{socket.gethostname()}-{index + 1}")


def issue_for_cluster(
    directory: Path,
    entities: MutableMapping[str, str],
    api: MutableMapping[str, str],
    runners: Sequence[MutableMapping[str, str]],
) -> None:
    """Issues what the cluster lacks (pki.ensure) and gives each service's variables its
    own certificate."""
    ids = [runner_identity(env, i) for i, env in enumerate(runners)]
    pki.ensure(
        directory,
        [pki.Identity(pki.ENTITIES), pki.Identity(pki.API), *ids, READ_TOOL],
    )
    entities.update(tls_env(directory, pki.Identity(pki.ENTITIES)))
    api.update(tls_env(directory, pki.Identity(pki.API)))
    for env, identity in zip(runners, ids, strict=True):
        env.update(tls_env(directory, identity))
