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
file, a FIFO or any other special entry, or more than `max_bytes` of content. Any of them
rejects the whole archive with ArchiveRejected, whose message names the entry.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Iterator

from runner_svc.errors import ArchiveRejected

BLOCK = tarfile.BLOCKSIZE
CHUNK = 64 * 1024
# The most content (bytes of files, uncompressed) an archive may hold by default.
DEFAULT_MAX_BYTES = 1 << 30
_END = b"\0" * (2 * BLOCK)


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


class Checker:
    """The rules, applied to the entries of one archive in their order."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._total = 0
        self._links: set[str] = set()  # symbolic links so far
        self._files: set[str] = set()  # regular files so far

    def check(self, member: tarfile.TarInfo) -> str:
        """The member's normalised name, or ArchiveRejected."""
        name = safe_name(member.name)
        parts = name.split("/")
        for depth in range(1, len(parts) + 1):
            if "/".join(parts[:depth]) in self._links:
                raise ArchiveRejected(f"entry {member.name!r} goes through or replaces a link")
        if member.issym():
            target = member.linkname
            if not target or target.startswith("/"):
                raise ArchiveRejected(f"link {member.name!r} points to absolute {target!r}")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if resolved == ".." or resolved.startswith("../"):
                raise ArchiveRejected(f"link {member.name!r} points outside: {target!r}")
            self._links.add(name)
        elif member.islnk():
            if safe_name(member.linkname) not in self._files:
                raise ArchiveRejected(
                    f"hard link {member.name!r} points to {member.linkname!r}, "
                    "which is not an earlier file of the archive"
                )
            self._files.add(name)
        elif member.isreg():
            self._files.add(name)
        elif not member.isdir():
            raise ArchiveRejected(f"entry {member.name!r} is a device, FIFO or special file")
        self._total += member.size if member.isreg() else 0
        if self._total > self._max_bytes:
            raise ArchiveRejected(f"archive exceeds the size limit of {self._max_bytes} bytes")
        return name


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
    max_bytes: int = DEFAULT_MAX_BYTES,
    owner: tuple[int, int] = (0, 0),
) -> Iterator[bytes]:
    """A plain tar stream of the checked entries of the archive in `chunks` (a tar, plain
    or compressed with gzip, bzip2 or xz), each moved under `prefix/` and owned by the
    (uid, gid) `owner` (a pipeline's user, who can then change them). Raises
    ArchiveRejected while iterating, at the first bad entry, before emitting any of it."""
    prefix = safe_name(prefix)
    if prefix == "." or "/" in prefix:
        raise ArchiveRejected(f"{prefix!r} is not a directory name")
    checker = Checker(max_bytes)
    try:
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|*") as source:
            yield _header(prefix, tarfile.DIRTYPE, 0o755, 0, owner=owner)
            for member in source:
                name = checker.check(member)
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
    except tarfile.TarError as exc:
        raise ArchiveRejected(f"not a readable tar archive: {exc}") from exc
    yield _END


def directory(name: str, owner: tuple[int, int], mode: int = 0o755) -> bytes:
    """A tar of the one directory `name` owned by the (uid, gid) `owner`: what makes an
    existing directory theirs when the engine unpacks it over it."""
    return _header(name, tarfile.DIRTYPE, mode, 0, owner=owner) + _END


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def extract(chunks: Iterable[bytes], dest: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Writes the plain tar in `chunks` under the existing directory `dest`, checking each
    entry first by the archive's rules, then against what is on disk: a link already
    there (made by a step, say) cannot take an entry outside `dest` either."""
    root = os.path.realpath(dest)
    checker = Checker(max_bytes)
    try:
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as source:
            for member in source:
                name = checker.check(member)
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
