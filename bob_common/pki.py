"""The cluster's certificate authority and the services' certificates: who is calling
entities is whoever holds a key whose certificate the cluster CA signed.

An identity is a kind and, for runners and tools, a name: `entities`, `api`,
`runner/<runner-id>`, `tool/read`, `tool/admin`. A certificate carries it as a URI
subject alternative name, `bob://runner/<runner-id>` (and as its common name, for
people reading it); entities trusts nothing else in it.

A PKI directory (0700) holds `ca.crt` and `ca.key`, then `<identity>.crt` and
`<identity>.key` for each identity issued: `api.crt`, `runner/<id>.crt`, `tool/read.crt`.
Keys are 0600. `ca.crt` may hold several CAs (during a rotation: the new one first).

    python -m bob_common.pki init <dir>               the CA, unless there is one
    python -m bob_common.pki issue <dir> <identity>   a new key and certificate (rotation)
    python -m bob_common.pki show <file.crt>          identity, issuer and expiry
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SCHEME = "bob://"
# Short lives, so a stolen key is soon worthless; `make run` re-issues what is about to
# expire (RENEW_WITHIN_DAYS) each time it starts, an operator re-issues with `issue`.
CA_DAYS = 365
CERT_DAYS = 90
RENEW_WITHIN_DAYS = 30

ENTITIES = "entities"
API = "api"
RUNNER = "runner"
TOOL = "tool"
# Kinds that stand alone, and kinds that take a name after a slash.
_SINGLE = {ENTITIES, API}
_NAMED = {RUNNER, TOOL}
TOOL_NAMES = {"read", "admin"}
# A runner id becomes a path segment and a URI path: no slashes, no leading dot.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class PkiError(ValueError):
    """A malformed identity, or a certificate that is not one of ours; the command line
    prints it and exits 2, a service's settings report it and exit RET_CONFIG."""


@dataclass(frozen=True)
class Identity:
    kind: str
    # The runner's id or the tool's name; "" for entities and api.
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> Identity:
        kind, _, name = text.partition("/")
        if kind in _SINGLE and not name:
            return cls(kind)
        if kind in _NAMED and _NAME.fullmatch(name):
            if kind == TOOL and name not in TOOL_NAMES:
                raise PkiError(f"unknown tool identity {text!r}: tools are {sorted(TOOL_NAMES)}")
            return cls(kind, name)
        raise PkiError(
            f"not an identity: {text!r} (entities, api, runner/<id>, tool/read, tool/admin;"
            " an id is letters, digits, '.', '_' and '-')"
        )

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}" if self.name else self.kind

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self}"


@dataclass(frozen=True)
class CertFiles:
    """Where one identity's key and certificate, and the CA bundle, are."""

    ca: Path
    cert: Path
    key: Path


def files(directory: Path | str, identity: Identity) -> CertFiles:
    d = Path(directory)
    return CertFiles(d / "ca.crt", d / f"{identity}.crt", d / f"{identity}.key")


def identity_of(cert_pem: bytes) -> Identity:
    """The identity a certificate was issued for (its bob:// URI name)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return _identity(cert)


def _identity(cert: x509.Certificate) -> Identity:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    ours = [u[len(SCHEME) :] for u in uris if u.startswith(SCHEME)]
    if len(ours) != 1:
        raise PkiError(f"certificate {cert.subject.rfc4514_string()} names no Bob identity")
    return Identity.parse(ours[0])


def identity_from_uris(uris: Iterable[str]) -> Identity | None:
    """The identity among a verified peer's URI names (gRPC's auth context), or None."""
    for uri in uris:
        if uri.startswith(SCHEME):
            try:
                return Identity.parse(uri[len(SCHEME) :])
            except PkiError:
                return None
    return None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, with `mode` from the start: a key is never readable by others, not
    even for a moment, and a reader never sees half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bob cluster"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def init(directory: Path | str, *, days: int = CA_DAYS, force: bool = False) -> Path:
    """Creates the directory (0700) and the CA in it, unless it has one (or `force`).
    Returns ca.crt's path."""
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    ca_crt, ca_key = d / "ca.crt", d / "ca.key"
    if ca_crt.exists() and ca_key.exists() and not force:
        return ca_crt
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    name = _name(f"Bob cluster CA {now:%Y-%m-%d %H:%M}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(ca_key, _key_pem(key), 0o600)
    _write(ca_crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca_crt


def _load_ca(d: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        # The first of the bundle is the CA that signs; any others are only trusted.
        cert = x509.load_pem_x509_certificates((d / "ca.crt").read_bytes())[0]
        key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise PkiError(f"no CA in {d}: run `python -m bob_common.pki init {d}` first") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{d / 'ca.key'} is not an EC key")
    return cert, key


def default_sans() -> list[str]:
    """The names entities is reached by on one machine."""
    return ["localhost", "127.0.0.1", "::1", socket.gethostname()]


def issue(
    directory: Path | str,
    identity: Identity,
    *,
    sans: Sequence[str] = (),
    days: int = CERT_DAYS,
) -> CertFiles:
    """A new key and certificate for `identity`, signed by the directory's CA, replacing
    any before (a rotation). Entities' certificate names the hosts and addresses it is
    reached by (`sans`, default_sans() when none); it serves and is a client of no one."""
    d = Path(directory)
    ca_cert, ca_key = _load_ca(d)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if identity.kind == ENTITIES:
        usage = [ExtendedKeyUsageOID.SERVER_AUTH]
        for san in sans or default_sans():
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(str(identity)))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = files(d, identity)
    _write(out.key, _key_pem(key), 0o600)
    _write(out.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return out


def needs_issuing(directory: Path | str, identity: Identity) -> bool:
    """True when the identity has no certificate in the directory, or one that its CA did
    not sign, or one that expires within RENEW_WITHIN_DAYS."""
    d = Path(directory)
    out = files(d, identity)
    if not (out.cert.exists() and out.key.exists()):
        return True
    ca_cert, _ = _load_ca(d)
    cert = x509.load_pem_x509_certificate(out.cert.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return True
    return cert.not_valid_after_utc - _now() < datetime.timedelta(days=RENEW_WITHIN_DAYS)


def ensure(directory: Path | str, identities: Iterable[Identity]) -> None:
    """A CA in the directory (a new one when it expires within RENEW_WITHIN_DAYS), and a
    current certificate for each identity: what `make run` does at each start."""
    d = Path(directory)
    ca = d / "ca.crt"
    stale = ca.exists() and (
        x509.load_pem_x509_certificates(ca.read_bytes())[0].not_valid_after_utc - _now()
        < datetime.timedelta(days=RENEW_WITHIN_DAYS)
    )
    init(d, force=stale)
    for identity in identities:
        if needs_issuing(d, identity):
            issue(d, identity)


def describe(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return (
        f"identity: {_identity(cert)}\n"
        f"issuer: {cert.issuer.rfc4514_string()}\n"
        f"valid: {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bob_common.pki", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p_init = commands.add_parser("init", help="create the cluster CA in DIR")
    p_init.add_argument("dir")
    p_init.add_argument("--days", type=int, default=CA_DAYS)
    p_init.add_argument("--force", action="store_true", help="replace an existing CA")
    p_issue = commands.add_parser("issue", help="issue (or re-issue) IDENTITY's key and cert")
    p_issue.add_argument("dir")
    p_issue.add_argument("identity", help="entities, api, runner/<id>, tool/read, tool/admin")
    p_issue.add_argument("--days", type=int, default=CERT_DAYS)
    p_issue.add_argument(
        "--san",
        action="append",
        default=[],
        help="entities only: a host name or IP address it is reached by (repeatable)",
    )
    p_show = commands.add_parser("show", help="print a certificate's identity and expiry")
    p_show.add_argument("cert")
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            print(init(args.dir, days=args.days, force=args.force))
        elif args.command == "issue":
            out = issue(args.dir, Identity.parse(args.identity), sans=args.san, days=args.days)
            print(f"{out.cert}\n{out.key}")
        else:
            print(describe(Path(args.cert).read_bytes()))
    except (PkiError, OSError) as exc:
        print(f"pki: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
