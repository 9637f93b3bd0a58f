"""Memory quantities of Bob's pipeline quotas ("512Mi", "1G"), read in this one place: the
runner turns them into container limits.

The notation is Bob's (`common.capacity/->bytes`): digits, then a suffix K, M, G, T, P or E,
with or without "i", each a power of 1024 either way: "512M" and "512Mi" are both
536 870 912 bytes, so a pipeline means on this server what it meant on Bob's. (Bob's
OpenAPI document requires the suffix; digits alone are taken here as bytes.) Fractions
("1.5Gi") and exponents ("1e9") are refused rather than rounded: say "1536Mi".
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"([0-9]+)([KMGTPE]i?)?")
_POWERS = {"K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
# Docker keeps memory sizes in a signed 64-bit integer.
MAX_BYTES = (1 << 63) - 1


def parse_memory(text: str) -> int:
    """The number of bytes `text` means; ValueError naming the text when it is not a
    quantity of the notation above, or is too large."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not a memory quantity: digits with a suffix K, M, G, T, P or E "
            "(with or without i; powers of 1024), e.g. '512Mi'"
        )
    digits, suffix = found.groups()
    value = int(digits)
    if suffix:
        value *= 1024 ** _POWERS[suffix[0]]
    if value > MAX_BYTES:
        raise ValueError(f"memory quantity {text!r} is too large")
    return value


def format_memory(size: int) -> str:
    """`size` bytes for a person, in the unit (binary or decimal) that divides it into the
    smallest whole number: "64 MiB", "512 MB", "1001 bytes"."""
    best = (size, "bytes")
    for base, units in (
        (1024, ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")),
        (1000, ("kB", "MB", "GB", "TB", "PB", "EB")),
    ):
        for power, unit in enumerate(units, start=1):
            if size and size % base**power == 0 and size // base**power < best[0]:
                best = (size // base**power, unit)
    return f"{best[0]} {best[1]}"
