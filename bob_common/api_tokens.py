"""API tokens as secrets: how one is made and how it is stored.

A token is `bob_` followed by 32 random bytes (256 bits, from the secrets module) in
URL-safe base64: the prefix lets people and secret scanners recognise one, and the
alphabet lets it stand unescaped as the password of a URL's user-info
(`http://token:bob_...@host:7777`), which is how wendy and the Terraform provider send it.

Only its SHA-256 is stored and compared. A slow password hash (bcrypt, argon2) protects
secrets people choose, which are guessable; a token of 256 random bits cannot be
guessed whatever the hash, and SHA-256 keeps its lookup one index probe, cheap enough
for every request.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "bob_"
RANDOM_BYTES = 32


def new_secret() -> str:
    """A fresh token: PREFIX and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(RANDOM_BYTES)


def hash_secret(secret: str) -> str:
    """What is stored of a token and what it is looked up by: SHA-256, in hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_token(text: str) -> bool:
    """Whether `text` has a token's prefix (a user name that is the token itself)."""
    return text.startswith(PREFIX) and len(text) > len(PREFIX)
