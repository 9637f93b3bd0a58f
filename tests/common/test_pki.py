"""The cluster CA and the services' certificates (bob_common/pki.py): what each holds,
who may read it, and when `make run` re-issues it."""

from __future__ import annotations

import datetime
import stat

import pytest
from cryptography import x509

from bob_common import pki


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_issued_certificates_name_their_identity_and_keys_are_owner_only(tmp_path):
    d = tmp_path / "pki"
    pki.init(d)
    runner = pki.issue(d, pki.Identity.parse("runner/docker-a"))
    entities = pki.issue(d, pki.Identity.parse("entities"), sans=["bob.example", "10.0.0.5"])

    assert pki.identity_of(runner.cert.read_bytes()) == pki.Identity("runner", "docker-a")
    assert runner.cert == d / "runner" / "docker-a.crt"
    assert _mode(d) == 0o700 and _mode(d / "runner") == 0o700
    assert _mode(d / "ca.key") == _mode(runner.key) == _mode(entities.key) == 0o600
    names = (
        x509.load_pem_x509_certificate(entities.cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert names.get_values_for_type(x509.DNSName) == ["bob.example"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    cert = x509.load_pem_x509_certificate(runner.cert.read_bytes())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life <= datetime.timedelta(days=pki.CERT_DAYS, minutes=5)


@pytest.mark.parametrize(
    "text", ["runner", "runner/", "runner/../x", "runner/a/b", "tool/root", "admin", ""]
)
def test_malformed_identities_are_refused(text):
    with pytest.raises(pki.PkiError):
        pki.Identity.parse(text)


def test_ensure_reissues_only_what_is_missing_or_from_another_ca(tmp_path):
    d = tmp_path / "pki"
    api = pki.Identity("api")
    pki.ensure(d, [api])
    first = (d / "api.crt").read_bytes()

    pki.ensure(d, [api])
    assert (d / "api.crt").read_bytes() == first

    pki.init(d, force=True)  # a new CA: what the old one signed is no longer current
    assert pki.needs_issuing(d, api)
    pki.ensure(d, [api])
    assert (d / "api.crt").read_bytes() != first


def test_the_command_line_creates_the_ca_and_issues(tmp_path, capsys):
    d = tmp_path / "pki"
    assert pki.main(["init", str(d)]) == 0
    assert pki.main(["issue", str(d), "tool/read"]) == 0
    assert pki.main(["show", str(d / "tool" / "read.crt")]) == 0
    assert "identity: tool/read" in capsys.readouterr().out
    assert pki.main(["issue", str(d), "runner/a b"]) == 2
    assert pki.main(["issue", str(tmp_path / "nothing"), "api"]) == 2
