"""The proof that a run event comes from the runner holding the run's claim.

ClaimRun gives the winning runner a random secret, new for each claim (so for each
attempt). The runner publishes every event of that attempt with an HMAC-SHA256 of the
message body keyed by it, in the AMQP header HEADER; entities recomputes it with the key
stored with the run's current claim and applies only the events whose MAC matches.

An HMAC rather than the secret itself: events cross the broker in clear (AMQP without
TLS, and any queue bound to bob.events sees them), so a secret in the message could be
read off one event and used to forge the next; a MAC reveals nothing of the key, and it
also covers the body, so an event cannot be altered on the way either. The MAC is over
the exact bytes of the body (not a re-serialisation), so it never depends on how a
protobuf library orders what it writes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aio_pika.abc import HeadersType

# The AMQP header that carries the MAC, as lowercase hex.
HEADER = "bob-claim-mac"
SECRET_BYTES = 32


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def mac(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def secrets_proof(secret: bytes, run_id: str, attempt: int) -> str:
    """What a runner shows to get its run's secrets (Entities.GetRunSecrets): the MAC of
    the request's subject under the claim's secret, which stays with the runner."""
    return mac(secret, f"GetRunSecrets {run_id} {attempt}".encode())


def mac_of(headers: HeadersType | None) -> str:
    """The MAC a delivery carries; empty when it has none (or not as text)."""
    value = (headers or {}).get(HEADER)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value if isinstance(value, str) else ""


def matches(secret: bytes, body: bytes, claimed_mac: str) -> bool:
    """True when `claimed_mac` is the MAC of `body` under `secret`; never for an empty
    secret (a run nobody holds) or MAC. Constant-time, so it leaks nothing of the key."""
    if not secret or not claimed_mac:
        return False
    return hmac.compare_digest(mac(secret, body), claimed_mac)
