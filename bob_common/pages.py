"""Lists in pages (issue 10): the bounds that keep every answer under gRPC's message limit,
and the opaque cursor a client sends back for the next page."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.message import Message

# gRPC's default limit on a received message, which the API's and runners' channels keep.
GRPC_MESSAGE_MAX_BYTES = 4 * 1024 * 1024
# Bytes of list items in one gRPC answer at most: room under the limit for the envelope.
LIST_MAX_BYTES = 3 * 1024 * 1024
# Largest request body the API may accept (BOB_API_MAX_BODY_BYTES at most): a pipeline
# goes to entities twice in one message (its definition and its document), and must fit.
BODY_MAX_BYTES = 3 * 512 * 1024
# Items in one page at most, whatever a client asks for.
LIST_MAX_ITEMS = 10_000

M = TypeVar("M", bound=Message)


def fill(items: Iterable[M], max_bytes: int = LIST_MAX_BYTES) -> tuple[list[M], bool]:
    """The leading items whose encoded sizes add up to at most max_bytes (always the first,
    which alone is under the limit since a request body is), and whether any was left out."""
    page: list[M] = []
    size = 0
    for item in items:
        # Each repeated field costs its bytes, a tag and a length (at most 5 bytes more).
        cost = item.ByteSize() + 6
        if page and size + cost > max_bytes:
            return page, True
        page.append(item)
        size += cost
    return page, False


class BadCursor(ValueError):
    pass


def encode_cursor(key: list[str]) -> str:
    raw = json.dumps(key, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The key a cursor names, or BadCursor naming the problem."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadCursor(f"Invalid cursor {cursor!r}") from exc
    if not (isinstance(key, list) and len(key) == parts and all(isinstance(k, str) for k in key)):
        raise BadCursor(f"Invalid cursor {cursor!r}")
    return key
