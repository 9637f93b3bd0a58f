"""Tar archives that cross the boundary of a run's workspace, checked entry by entry.

Pure and streaming: an archive is read as a stream of chunks and never held whole, in
memory or on disk. Both executors use it the same way:

- a resource comes in through rewrite(), which reads the provider's tar (plain or
  compressed), rejects anything unsafe and emits a plain tar of the checked entries under
  `<resource-name>/`. The Docker executor streams that into the container; the shell
  executor gives it to extract(), which checks every entry again, this time against the
  real file system, before writing it;
- an artifact of the shell executor goes out through pack() (for containers, Docker's
  archive API plays that part).

Unsafe: an absolute name, a `..` component, a link that points outside, an entry that
goes through or replaces a link, a hard link to anything but an earlier file, a device
file, a FIFO, a sparse file or any other special entry, or a name longer than the file
system takes. Any of them rejects the whole archive with ArchiveRejected, whose message
names the entry.

Too big (Caps, every one a runner setting): more bytes of tar stream than `max_bytes`,
headers and padding included, counted after decompression as the stream is read, so a
compression bomb stops at the cap; more entries than `max_entries`; extended headers (pax,
GNU long names) of more than `max_header_bytes` before one entry, refused before tarfile
reads them into memory. The rejection names the cap. Memory stays bounded while checking:
the stream is read a chunk at a time, and what is kept per entry is a digest of its name.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from runner_svc.errors import ArchiveRejected

BLOCK = tarfile.BLOCKSIZE
CHUNK = 64 * 1024
_END = b"\0" * (2 * BLOCK)
# The file system's limits (Linux NAME_MAX; PATH_MAX less room for the workspace's own
# path): longer names could not be written anyway, and would fail less clearly.
MAX_COMPONENT_BYTES = 255
MAX_NAME_BYTES = 3072
# Extended headers before one entry: a GNU long name and long link, a pax header, a
# global one, with room to spare. A longer chain is an attack on tarfile's recursion.
MAX_HEADER_CHAIN = 8
# Global pax headers apply to every later entry (tarfile copies them into each), so
# their keys cost CPU per entry: git's is one 52-byte comment.
MAX_GLOBAL_HEADER_BYTES = 4096
_EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_GNU_LONG = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


@dataclass(frozen=True)
class Caps:
    """How big an archive may be; each cap is a runner setting, named in its rejection."""

    # Bytes of the uncompressed tar stream: headers, content and padding.
    max_bytes: int = 1 << 30
    # Entries (files, directories, links).
    max_entries: int = 100_000
    # Bytes of the extended headers (pax, GNU long name or link) before one entry.
    max_header_bytes: int = 1 << 20


DEFAULT_CAPS = Caps()
# For a stream rewrite() made, and so capped already: extract() then checks it against the
# file system only, whatever the runner's caps are.
REWRITTEN = Caps(max_bytes=1 << 62, max_entries=1 << 62)


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        # A view: taking a little at a time from a large chunk copies nothing.
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def safe_name(name: str) -> str:
    """`name` normalised ("a/./b/" is "a/b"; the root is "."), or ArchiveRejected when it
    is absolute or climbs out with `..`."""
    if not name or name.startswith("/") or "\0" in name:
        raise ArchiveRejected(f"entry {name!r} has an absolute or empty name")
    if ".." in name.split("/"):
        raise ArchiveRejected(f"entry {name!r} leaves the directory with '..'")
    return posixpath.normpath(name)


def _digest(name: str) -> bytes:
    # 16 bytes kept per entry however long its name: memory bounded by the entry count.
    return hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _check_length(name: str) -> None:
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise ArchiveRejected(
            f"entry {name[:64]!r}... has a name of {size} bytes, over the limit of "
            f"{MAX_NAME_BYTES} bytes"
        )
    for part in name.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise ArchiveRejected(
                f"entry {name[:64]!r}... has a path component over the limit of "
                f"{MAX_COMPONENT_BYTES} bytes"
            )


class Checker:
    """The rules, applied to the entries of one archive in their order."""

    def __init__(self, caps: Caps = DEFAULT_CAPS) -> None:
        self._caps = caps
        self._entries = 0
        # Digests of the symbolic links so far, and the lengths of their names: an entry
        # goes through a link when its name's prefix of such a length is one of them.
        self._links: set[bytes] = set()
        self._link_lengths: set[int] = set()
        self._files: set[bytes] = set()  # digests of the regular files so far

    def _through_link(self, name: str) -> bool:
        return any(
            (n == len(name) or (n < len(name) and name[n] == "/"))
            and _digest(name[:n]) in self._links
            for n in self._link_lengths
        )

    def check(self, member: tarfile.TarInfo, end: int) -> str:
        """The member's normalised name, or ArchiveRejected. `end`: where the member's
        data ends in the uncompressed stream (tarfile's offset after reading it)."""
        self._entries += 1
        if self._entries > self._caps.max_entries:
            raise ArchiveRejected(
                f"archive has more than {self._caps.max_entries} entries "
                "(BOB_RUNNER_ARCHIVE_MAX_ENTRIES)"
            )
        if end > self._caps.max_bytes:
            raise too_big(self._caps.max_bytes)
        name = safe_name(member.name)
        _check_length(name)
        if self._through_link(name):
            raise ArchiveRejected(f"entry {member.name!r} goes through or replaces a link")
        if member.sparse is not None:
            raise ArchiveRejected(f"entry {member.name!r} is a sparse file")
        if member.issym():
            target = member.linkname
            if not target or target.startswith("/"):
                raise ArchiveRejected(f"link {member.name!r} points to absolute {target!r}")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if resolved == ".." or resolved.startswith("../"):
                raise ArchiveRejected(f"link {member.name!r} points outside: {target!r}")
            self._links.add(_digest(name))
            self._link_lengths.add(len(name))
        elif member.islnk():
            if _digest(safe_name(member.linkname)) not in self._files:
                raise ArchiveRejected(
                    f"hard link {member.name!r} points to {member.linkname!r}, "
                    "which is not an earlier file of the archive"
                )
            self._files.add(_digest(name))
        elif member.isreg():
            self._files.add(_digest(name))
        elif not member.isdir():
            raise ArchiveRejected(f"entry {member.name!r} is a device, FIFO or special file")
        return name


def too_big(max_bytes: int) -> ArchiveRejected:
    return ArchiveRejected(
        f"archive is larger than {max_bytes} bytes unpacked, headers included "
        "(BOB_RUNNER_ARCHIVE_MAX_BYTES)"
    )


# --- reading: bounded decompression and headers --------------------------------------


class _Gzip:
    """zlib's gzip decompressor with the interface of bz2's and lzma's (needs_input)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = b""
        self._full = False  # the last output filled max_length: more may be pending

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._tail and not self._full

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(self._tail + data if self._tail else data, max_length)
        self._tail = self._d.unconsumed_tail
        self._full = len(out) == max_length
        return out


_MAGIC: tuple[tuple[bytes, Callable[[], Any]], ...] = (
    (b"\x1f\x8b", _Gzip),
    (b"BZh", bz2.BZ2Decompressor),
    (b"\xfd7zXZ\x00", lzma.LZMADecompressor),
)


def _inflate(chunks: Iterable[bytes], magic: bytes, new: Callable[[], Any]) -> Iterator[bytes]:
    """The decompressed stream, CHUNK bytes at a time at most, so that a reader stops a
    bomb by no longer asking (tarfile's own decompression inflates a whole read at once:
    10 KiB of bzip2 can be gigabytes). Concatenated streams are read on; anything else
    after the end is ignored, as tar's trailing padding is."""
    d = new()
    for data in chunks:
        while data:
            if d.eof:
                if not data.startswith(magic):
                    return
                d = new()
            yield d.decompress(data, CHUNK)
            while not d.eof and not d.needs_input:
                yield d.decompress(b"", CHUNK)
            data = d.unused_data if d.eof else b""


def _plain(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The plain tar stream of `chunks`, decompressed if it is gzip, bzip2 or xz."""
    it = iter(chunks)
    head = b""
    for chunk in it:  # enough bytes to tell the compression
        head += chunk
        if len(head) >= 6:
            break
    rest = _prepend(head, it)
    for magic, new in _MAGIC:
        if head.startswith(magic):
            return _inflate(rest, magic, new)
    return rest


def _prepend(head: bytes, it: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from it


def _counted(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """The chunks, until more than `max_bytes` have passed: then too_big(). A backstop to
    the checker's exact count, for what tarfile reads between entries; with room for
    the chunk and the record tarfile reads ahead."""
    total, allowed = 0, max_bytes + CHUNK + 2 * tarfile.RECORDSIZE
    for chunk in chunks:
        total += len(chunk)
        if total > allowed:
            raise too_big(max_bytes)
        yield chunk


class _HeaderBudget:
    """Extended headers before the current entry, counted while tarfile reads them."""

    def __init__(self, caps: Caps) -> None:
        self.caps = caps
        self.chain = 0
        self.bytes = 0
        self.global_bytes = 0


class _CappedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses extended headers over their caps before tarfile reads them
    whole into memory (its documented way in: a subclass overriding _proc_member)."""

    budget: _HeaderBudget

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        budget = self.budget
        if self.type in _EXTENDED or self.type in _GNU_LONG:
            budget.chain += 1
            budget.bytes += self.size
            if budget.chain > MAX_HEADER_CHAIN:
                raise ArchiveRejected(
                    f"archive has more than {MAX_HEADER_CHAIN} extended headers before one entry"
                )
            if budget.bytes > budget.caps.max_header_bytes:
                raise ArchiveRejected(
                    f"an entry's extended headers hold {budget.bytes} bytes, over the limit of "
                    f"{budget.caps.max_header_bytes} bytes (BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES)"
                )
            if self.type == tarfile.XGLTYPE:
                budget.global_bytes += self.size
                if budget.global_bytes > MAX_GLOBAL_HEADER_BYTES:
                    raise ArchiveRejected(
                        f"archive's global pax headers exceed {MAX_GLOBAL_HEADER_BYTES} bytes"
                    )
        else:
            budget.chain = budget.bytes = 0
            if self.type == tarfile.GNUTYPE_SPARSE:
                raise ArchiveRejected(f"entry {self.name!r} is a sparse file")
        return super()._proc_member(tarfile_)  # type: ignore[misc]

    def _proc_gnusparse_10(self, next: Any, pax_headers: Any, tarfile_: Any) -> None:
        # Its map is read from the entry's data, unbounded: sparse files are refused.
        raise ArchiveRejected(f"entry {next.name!r} is a sparse file")


def _open(chunks: Iterable[bytes], caps: Caps) -> tarfile.TarFile:
    """A stream-mode TarFile over the checked, bounded plain stream of `chunks`."""
    tarinfo = type("CappedTarInfo", (_CappedTarInfo,), {"budget": _HeaderBudget(caps)})
    reader = ChunkReader(_counted(_plain(chunks), caps.max_bytes))
    return tarfile.open(fileobj=reader, mode="r|", tarinfo=tarinfo)


def _entries(source: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := source.next()) is not None:
        yield member
        # In stream mode tarfile keeps every entry it has read, which nothing here needs
        # (no lookups by name): memory would grow with the entry count.
        source.members.clear()  # type: ignore[attr-defined]  # (not in typeshed)


def _header(
    name: str,
    kind: bytes,
    mode: int,
    mtime: float,
    size: int = 0,
    linkname: str = "",
    owner: tuple[int, int] = (0, 0),
) -> bytes:
    # Always a fresh TarInfo: a source entry's pax headers (which may carry its own path,
    # or extended attributes such as file capabilities) are never passed on.
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode & 0o777
    info.mtime = int(mtime)
    info.size = size
    info.linkname = linkname
    info.uid, info.gid = owner
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _member_data(source: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    reader = source.extractfile(member)
    assert reader is not None
    left = member.size
    while left:
        chunk = reader.read(min(CHUNK, left))
        if not chunk:
            raise ArchiveRejected(f"archive ends inside entry {member.name!r}")
        left -= len(chunk)
        yield chunk
    yield _padding(member.size)


def rewrite(
    chunks: Iterable[bytes],
    prefix: str,
    caps: Caps = DEFAULT_CAPS,
    owner: tuple[int, int] = (0, 0),
) -> Iterator[bytes]:
    """A plain tar stream of the checked entries of the archive in `chunks` (a tar, plain
    or compressed with gzip, bzip2 or xz), each moved under `prefix/` and owned by the
    (uid, gid) `owner` (a pipeline's user, who can then change them). Raises
    ArchiveRejected while iterating, at the first bad entry, before emitting any of it."""
    prefix = safe_name(prefix)
    if prefix == "." or "/" in prefix:
        raise ArchiveRejected(f"{prefix!r} is not a directory name")
    checker = Checker(caps)
    try:
        with _open(chunks, caps) as source:
            yield _header(prefix, tarfile.DIRTYPE, 0o755, 0, owner=owner)
            for member in _entries(source):
                name = checker.check(member, source.offset)
                if name == ".":
                    continue  # the archive's root is the prefix directory
                if member.isreg():
                    yield _header(
                        f"{prefix}/{name}",
                        tarfile.REGTYPE,
                        member.mode,
                        member.mtime,
                        member.size,
                        owner=owner,
                    )
                    yield from _member_data(source, member)
                elif member.islnk():
                    target = f"{prefix}/{safe_name(member.linkname)}"
                    yield _header(
                        f"{prefix}/{name}",
                        tarfile.LNKTYPE,
                        member.mode,
                        member.mtime,
                        linkname=target,
                        owner=owner,
                    )
                elif member.issym():
                    yield _header(
                        f"{prefix}/{name}",
                        tarfile.SYMTYPE,
                        0o777,
                        member.mtime,
                        linkname=member.linkname,
                        owner=owner,
                    )
                else:
                    yield _header(
                        f"{prefix}/{name}",
                        tarfile.DIRTYPE,
                        member.mode | 0o700,
                        member.mtime,
                        owner=owner,
                    )
    except (tarfile.TarError, zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        raise ArchiveRejected(f"not a readable tar archive: {exc}") from exc
    yield _END


def directory(name: str, owner: tuple[int, int], mode: int = 0o755) -> bytes:
    """A tar of the one directory `name` owned by the (uid, gid) `owner`: what makes an
    existing directory theirs when the engine unpacks it over it."""
    return _header(name, tarfile.DIRTYPE, mode, 0, owner=owner) + _END


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def extract(chunks: Iterable[bytes], dest: str, caps: Caps = DEFAULT_CAPS) -> None:
    """Writes the plain tar in `chunks` under the existing directory `dest`, checking each
    entry first by the archive's rules, then against what is on disk: a link already
    there (made by a step, say) cannot take an entry outside `dest` either."""
    root = os.path.realpath(dest)
    checker = Checker(caps)
    try:
        with _open(chunks, caps) as source:
            for member in _entries(source):
                name = checker.check(member, source.offset)
                parent = os.path.realpath(os.path.join(root, posixpath.dirname(name)))
                if not _inside(parent, root):
                    raise ArchiveRejected(f"entry {member.name!r} would be written outside")
                if member.issym():
                    target = os.path.realpath(os.path.join(parent, member.linkname))
                    if not _inside(target, root):
                        raise ArchiveRejected(f"link {member.name!r} would point outside")
                # The "data" filter repeats the essential checks, drops owners and
                # special permission bits: a second line of defence.
                source.extract(member, root, filter="data")
    except tarfile.TarError as exc:
        raise ArchiveRejected(f"could not extract the archive: {exc}") from exc


def pack(root: str, path: str) -> Iterator[bytes]:
    """A plain tar stream of `path` (relative to `root`): the file, link or directory with
    everything under it, named after its last component, as Docker's archive API does.
    Links are stored as links, never followed. Raises FileNotFoundError when `path` does
    not exist and ArchiveRejected when it lies outside `root`."""
    name = safe_name(path)
    real_root = os.path.realpath(root)
    top = os.path.join(real_root, name)
    if not _inside(os.path.realpath(os.path.dirname(top)), real_root):
        raise ArchiveRejected(f"path {path!r} lies outside the working directory")
    os.lstat(top)  # FileNotFoundError before anything is emitted
    yield from _pack(top, posixpath.basename(name) if name != "." else ".")
    yield _END


def _pack(path: str, arcname: str) -> Iterator[bytes]:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        yield _header(arcname, tarfile.SYMTYPE, 0o777, st.st_mtime, linkname=os.readlink(path))
    elif stat.S_ISREG(st.st_mode):
        yield _header(arcname, tarfile.REGTYPE, st.st_mode, st.st_mtime, st.st_size)
        yield from _file_data(path, st.st_size)
    elif stat.S_ISDIR(st.st_mode):
        yield _header(arcname, tarfile.DIRTYPE, st.st_mode, st.st_mtime)
        for entry in sorted(os.listdir(path)):
            yield from _pack(os.path.join(path, entry), f"{arcname}/{entry}")
    # Sockets, FIFOs and devices are not content: they are left out.


def _file_data(path: str, size: int) -> Iterator[bytes]:
    """Exactly `size` bytes, even if the file changed size since it was measured."""
    left = size
    with open(path, "rb") as f:
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    if left:
        yield b"\0" * left
    yield _padding(size)
