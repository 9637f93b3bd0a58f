"""A corpus of hostile tar archives, shared by the unit tests of the tar checks
(tests/runner/test_tarsafe.py) and the end-to-end ones through a provider
(tests/limits/test_archives.py). Each bomb says what its rejection must contain, given
the caps it was made against."""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
MiB = 1 << 20


def archive(*entries: tuple, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of (name, type, data-or-linkname) entries, made exactly as given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755 if kind == DIR else 0o644
            data = None
            if kind == REG:
                data = io.BytesIO(payload)
                info.size = len(payload)
            elif kind in (SYM, LNK):
                info.linkname = payload
            tar.addfile(info, data)
    return out.getvalue()


def gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`chunks` gzip-compressed as they come, never held whole."""
    z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        if out := z.compress(chunk):
            yield out
    yield z.flush()


def pax_header_bomb(size: int = 64 * MiB) -> bytes:
    """One pax header of `size` bytes (a comment of zeros) before a tiny file, gzipped:
    about 64 KiB on the wire for 64 MiB."""
    head = tarfile.TarInfo("bomb.txt")
    header = head.tobuf(tarfile.PAX_FORMAT)  # ustar header only: no pax needed
    record_body = "comment=" + "0" * (size - 32) + "\n"
    length = len(record_body) + 1
    while len(f"{length} {record_body}") != length:
        length += 1
    record = f"{length} {record_body}".encode()
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    pax.size = len(record)
    pax_block = pax.tobuf(tarfile.USTAR_FORMAT)
    padding = b"\0" * (-len(record) % 512)
    parts = [pax_block, record, padding, header, b"\0" * 1024]
    return b"".join(gzipped(iter(parts)))


def zeros_forever(entry_bytes: int = MiB) -> Iterator[bytes]:
    """An endless tar, gzipped as it goes: files of `entry_bytes` zeros, one after the
    other. Whoever inflates it all never ends."""

    def plain() -> Iterator[bytes]:
        n = 0
        zeros = b"\0" * 65536
        while True:
            info = tarfile.TarInfo(f"zeros-{n}")
            info.size = entry_bytes
            yield info.tobuf(tarfile.USTAR_FORMAT)
            for _ in range(entry_bytes // len(zeros)):
                yield zeros
            n += 1

    return gzipped(plain())


def empty_entries(count: int = 100_000) -> bytes:
    """`count` empty files, gzipped."""

    def plain() -> Iterator[bytes]:
        for n in range(count):
            yield tarfile.TarInfo(f"e{n:06d}").tobuf(tarfile.USTAR_FORMAT)
        yield b"\0" * 1024

    return b"".join(gzipped(plain()))


@dataclass(frozen=True)
class Bomb:
    name: str
    body: bytes | None  # None: zeros_forever(), streamed
    reason: str  # what the run's reason (the rejection) contains


def corpus(outside: str) -> list[Bomb]:
    """The hostile archives; `outside` is an absolute directory that escapes would write
    to (it must stay empty)."""
    return [
        Bomb("pax-header", pax_header_bomb(), "BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES"),
        Bomb("gzip-zeros", None, "BOB_RUNNER_ARCHIVE_MAX_BYTES"),
        Bomb("empty-entries", empty_entries(), "BOB_RUNNER_ARCHIVE_MAX_ENTRIES"),
        Bomb("deep-path", archive(("a/" * 2000 + "x", REG, b"deep")), "over the limit of 3072"),
        Bomb("long-name", archive(("n" * 300, REG, b"long")), "over the limit of 255"),
        Bomb(
            "symlink-escape",
            archive(("out", SYM, outside), ("out/owned", REG, b"owned")),
            "points to absolute",
        ),
        Bomb(
            "symlink-dotdot",
            archive(("up", SYM, "../../../../../../../../.." + outside)),
            "points outside",
        ),
        Bomb("hardlink-escape", archive(("h", LNK, outside + "/owned")), "absolute or empty name"),
        Bomb("absolute", archive((outside + "/owned", REG, b"owned")), "absolute or empty name"),
        Bomb("dotdot", archive(("../../../../../.." + outside + "/owned", REG, b"x")), "'..'"),
        Bomb("device", archive(("null", tarfile.CHRTYPE, None)), "device, FIFO or special"),
    ]


# The caps tests/limits/test_archives.py gives its runners, small so that every bomb
# is refused fast; the unit tests check the corpus against the same.
E2E_CAPS = {"max_bytes": 16 * MiB, "max_entries": 10_000, "max_header_bytes": MiB}
