"""Encryption of stored secrets with the operator's keys (BOB_SECRETS_KEY[_FILE]).

Fernet (cryptography's AES-128-CBC + HMAC-SHA256 recipe) seals each value; MultiFernet
reads with any of the keys and seals with the first, which is how a key is rotated: the
new key goes first, the old one stays after it until rotate() has re-sealed every value.
A value is sealed together with its secret's name, so a ciphertext copied onto another
secret's row in the database does not open there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from entities_svc.errors import FailedPrecondition

NO_KEY = (
    "Secrets cannot be stored or read: entities has no key "
    "(set BOB_SECRETS_KEY_FILE or BOB_SECRETS_KEY, see the README)"
)


class Undecryptable(FailedPrecondition):
    """Raised when a stored value opens with none of the keys (a key was removed too early,
    or the row was tampered with); the caller names the secret."""


class SecretBox:
    """Seals and opens values with the keys given, the first one sealing. Without keys,
    every seal and open raises FailedPrecondition(NO_KEY): nothing else needs a key."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._first = Fernet(keys[0]) if keys else None
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None
        self.keys = len(keys)

    @property
    def usable(self) -> bool:
        return self._fernet is not None

    def _keyed(self) -> MultiFernet:
        if self._fernet is None:
            raise FailedPrecondition(NO_KEY)
        return self._fernet

    def seal(self, name: str, value: str) -> str:
        plain = json.dumps({"name": name, "value": value}, ensure_ascii=False)
        return self._keyed().encrypt(plain.encode()).decode("ascii")

    def open(self, name: str, ciphertext: str) -> str:
        try:
            sealed = json.loads(self._keyed().decrypt(ciphertext.encode("ascii")))
        except (InvalidToken, ValueError):
            raise Undecryptable(
                f"Secret {name!r} cannot be decrypted with the keys given"
            ) from None
        if not isinstance(sealed, dict) or sealed.get("name") != name:
            raise Undecryptable(f"Secret {name!r} was sealed for another secret")
        return str(sealed["value"])

    def sealed_with_first(self, ciphertext: str) -> bool:
        try:
            self._keyed()
            assert self._first is not None
            self._first.decrypt(ciphertext.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        """The same value sealed with the first key (unchanged when it already was)."""
        try:
            return self._keyed().rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise Undecryptable("a stored secret cannot be decrypted with the keys given") from None
