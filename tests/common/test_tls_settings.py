"""The TLS settings (BOB_TLS_*, BOB_ENTITIES_ALLOW_PLAINTEXT) and what they refuse."""

from __future__ import annotations

import pytest

from bob_common import pki
from bob_common.config import (
    CommonSettings,
    ConfigError,
    EntitiesSettings,
    RunnerSettings,
    address_is_loopback,
)


@pytest.fixture
def runner_files(tmp_path) -> pki.CertFiles:
    pki.init(tmp_path)
    return pki.issue(tmp_path, pki.Identity("runner", "docker-7"))


def _env(files: pki.CertFiles) -> dict[str, str]:
    return {
        "BOB_TLS_CA": str(files.ca),
        "BOB_TLS_CERT": str(files.cert),
        "BOB_TLS_KEY": str(files.key),
    }


def test_tls_needs_all_three_files(runner_files):
    assert CommonSettings.from_env(_env(runner_files)).tls
    assert not CommonSettings.from_env({}).tls
    with pytest.raises(ConfigError, match="BOB_TLS_KEY"):
        CommonSettings.from_env({**_env(runner_files), "BOB_TLS_KEY": ""})
    with pytest.raises(ConfigError, match="not a readable file"):
        CommonSettings.from_env({**_env(runner_files), "BOB_TLS_CA": "/nonexistent/ca.crt"})


@pytest.mark.parametrize(
    ("addr", "loopback"),
    [
        ("127.0.0.1:7778", True),
        ("localhost:7778", True),
        ("[::1]:7778", True),
        ("0.0.0.0:7778", False),
        ("[::]:7778", False),
        ("10.1.2.3:7778", False),
        ("bob.example:7778", False),
    ],
)
def test_loopback_addresses(addr, loopback):
    assert address_is_loopback(addr) is loopback


def test_entities_refuses_plaintext_beyond_loopback_unless_allowed(runner_files):
    beyond = {"BOB_ENTITIES_LISTEN": "0.0.0.0:7778"}
    with pytest.raises(ConfigError, match="refusing to serve plaintext"):
        EntitiesSettings.from_env(beyond)
    allowed = {**beyond, "BOB_ENTITIES_ALLOW_PLAINTEXT": "true"}
    assert EntitiesSettings.from_env(allowed).allow_plaintext
    assert EntitiesSettings.from_env({**beyond, **_env(runner_files)}).common.tls


def test_a_runner_takes_its_id_from_its_certificate_and_refuses_another(runner_files, tmp_path):
    assert RunnerSettings.from_env(_env(runner_files)).runner_id == "docker-7"
    given = {**_env(runner_files), "BOB_RUNNER_ID": "docker-7"}
    assert RunnerSettings.from_env(given).runner_id == "docker-7"
    with pytest.raises(ConfigError, match="runner/docker-7"):
        RunnerSettings.from_env({**_env(runner_files), "BOB_RUNNER_ID": "docker-8"})
    api = pki.issue(tmp_path, pki.Identity("api"))
    with pytest.raises(ConfigError, match="not a runner's"):
        RunnerSettings.from_env(
            {**_env(runner_files), "BOB_TLS_CERT": str(api.cert), "BOB_TLS_KEY": str(api.key)}
        )
