"""The tar checks both executors share: what a provider's archive may contain, and that
nothing ever lands outside the directory it is meant for."""

from __future__ import annotations

import gzip
import io
import itertools
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_svc.errors import ArchiveRejected
from runner_svc.executors import tarsafe

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


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


def chunked(data: bytes, size: int = 1000) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def rewritten(data: bytes, prefix: str = "res", **kwargs) -> list[tarfile.TarInfo]:
    out = b"".join(tarsafe.rewrite(chunked(data), prefix, **kwargs))
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        return [
            (m.name, m.type, m.linkname, tar.extractfile(m).read() if m.isreg() else None)
            for m in tar
        ]


def rejection(data: bytes, **kwargs) -> str:
    with pytest.raises(ArchiveRejected) as caught:
        b"".join(tarsafe.rewrite(chunked(data), "res", **kwargs))
    return str(caught.value)


def test_entries_are_moved_under_the_resource_directory_with_their_content():
    data = archive(
        ("./", DIR, None),
        ("./src/", DIR, None),
        ("./src/main.c", REG, b"int main;\n" * 10000),
        ("./src/link", SYM, "main.c"),
        ("./hard", LNK, "src/main.c"),
    )
    assert rewritten(data) == [
        ("res", DIR, "", None),
        ("res/src", DIR, "", None),
        ("res/src/main.c", REG, "", b"int main;\n" * 10000),
        ("res/src/link", SYM, "main.c", None),
        ("res/hard", LNK, "res/src/main.c", None),
    ]


def test_a_compressed_archive_is_accepted():
    data = gzip.compress(archive(("a.txt", REG, b"zipped")))
    assert rewritten(data)[-1] == ("res/a.txt", REG, "", b"zipped")


def test_long_and_unicode_names_survive_and_a_sources_own_path_header_is_not_passed_on():
    long = "d/" * 80 + "ünïcode.txt"
    assert rewritten(archive((long, REG, b"x")))[-1] == (f"res/{long}", REG, "", b"x")
    assert rewritten(archive((long, REG, b"x"), fmt=tarfile.GNU_FORMAT))[-1][0] == f"res/{long}"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (("/etc/passwd", REG, b"x"), "has an absolute or empty name"),
        (("../x", REG, b"x"), "leaves the directory with '..'"),
        (("a/../../x", REG, b"x"), "leaves the directory with '..'"),
        (("up", SYM, "../outside"), "points outside"),
        (("a/b/up", SYM, "../../.."), "points outside"),
        (("abs", SYM, "/etc"), "points to absolute"),
        (("hard", LNK, "/etc/passwd"), "has an absolute or empty name"),
        (("hard", LNK, "../x"), "leaves the directory"),
        (("hard", LNK, "nosuch"), "not an earlier file of the archive"),
    ],
)
def test_names_and_links_that_leave_the_directory_are_rejected(entry, why):
    assert why in rejection(archive(("ok.txt", REG, b"fine"), entry))


def test_an_entry_written_through_or_over_a_link_is_rejected():
    # Each link points inside; what would follow it is the danger.
    through = archive(("sub/", DIR, None), ("l", SYM, "sub"), ("l/x", REG, b"x"))
    assert "goes through or replaces a link" in rejection(through)
    over = archive(("l", SYM, "sub"), ("l", REG, b"x"))
    assert "goes through or replaces a link" in rejection(over)
    to_link = archive(("a/b/s", SYM, "../.."), ("h", LNK, "a/b/s"))
    assert "not an earlier file" in rejection(to_link)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_are_rejected(kind):
    assert "device, FIFO or special file" in rejection(archive(("dev", kind, None)))


def test_an_archive_over_the_size_limit_is_rejected_and_one_at_the_limit_is_not():
    data = archive(("a", REG, b"x" * 600), ("b", REG, b"y" * 400))
    assert len(rewritten(data, max_bytes=1000)) == 3
    assert rejection(data, max_bytes=999) == "archive exceeds the size limit of 999 bytes"


def test_the_size_limit_bounds_the_uncompressed_content_of_a_compressed_archive():
    bomb = gzip.compress(archive(("zeros", REG, b"\0" * 5_000_000)))
    assert len(bomb) < 10_000
    assert "size limit" in rejection(bomb, max_bytes=1_000_000)


def test_something_that_is_no_tar_is_rejected():
    assert "not a readable tar archive" in rejection(b"<html>502 Bad Gateway</html>" * 30)
    assert "not a readable tar archive" in rejection(b"")


def test_a_truncated_archive_is_rejected():
    data = archive(("big", REG, b"x" * 100_000))
    assert "archive" in rejection(data[:50_000])


def test_the_stream_is_produced_as_it_is_read_never_whole():
    # A source that never ends: the first entry comes out all the same.
    header = archive(("first.txt", REG, b"hello"))[: 2 * tarfile.BLOCKSIZE]
    endless = itertools.chain([header], itertools.repeat(b"\0" * 512))
    stream = tarsafe.rewrite(endless, "res")
    first = next(stream)
    assert b"res" in first


def test_the_destination_must_be_a_plain_directory_name():
    for bad in ("", ".", "..", "/abs", "a/b"):
        with pytest.raises(ArchiveRejected):
            next(tarsafe.rewrite(iter([b""]), bad))


# --- extract: the shell executor's side --------------------------------------------


def test_extract_writes_a_rewritten_archive_into_the_directory(tmp_path):
    data = archive(("src/", DIR, None), ("src/a.txt", REG, b"hi"), ("src/l", SYM, "a.txt"))
    tarsafe.extract(tarsafe.rewrite(chunked(data), "res"), str(tmp_path))
    assert (tmp_path / "res/src/a.txt").read_bytes() == b"hi"
    assert os.readlink(tmp_path / "res/src/l") == "a.txt"


def test_extract_checks_the_archive_itself(tmp_path):
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    workspace.mkdir()
    with pytest.raises(ArchiveRejected):
        tarsafe.extract([archive(("../outside", REG, b"x"))], str(workspace))
    assert not outside.exists()


def test_a_link_already_in_the_workspace_cannot_lead_an_entry_outside(tmp_path):
    # Given a step that left a link to a directory outside the workspace
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (workspace / "res").symlink_to(outside)
    # When a resource named like the link arrives
    stream = tarsafe.rewrite([archive(("x.txt", REG, b"x"))], "res")
    with pytest.raises(ArchiveRejected, match="outside"):
        tarsafe.extract(stream, str(workspace))
    # Then nothing was written through it
    assert list(outside.iterdir()) == []


# --- pack: artifacts of the shell executor -----------------------------------------


def _names(stream: Iterator[bytes]) -> list[tuple[str, bytes, str]]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return [
            (m.name, m.type, tar.extractfile(m).read() if m.isreg() else m.linkname) for m in tar
        ]


def test_pack_streams_a_directory_named_after_its_last_component(tmp_path: Path):
    (tmp_path / "build/dist").mkdir(parents=True)
    (tmp_path / "build/dist/app").write_bytes(b"binary" * 50_000)
    (tmp_path / "build/dist/latest").symlink_to("app")
    assert _names(tarsafe.pack(str(tmp_path), "build/dist")) == [
        ("dist", DIR, ""),
        ("dist/app", REG, b"binary" * 50_000),
        ("dist/latest", SYM, "app"),
    ]
    (tmp_path / "one.txt").write_text("1")
    assert _names(tarsafe.pack(str(tmp_path), "one.txt")) == [("one.txt", REG, b"1")]


def test_pack_refuses_paths_outside_the_directory_and_reports_missing_ones(tmp_path: Path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "secret").mkdir()
    (workspace / "escape").symlink_to(tmp_path / "secret")
    for bad in ("../secret", "/etc", "escape/x"):
        with pytest.raises(ArchiveRejected):
            list(tarsafe.pack(str(workspace), bad))
    with pytest.raises(FileNotFoundError):
        list(tarsafe.pack(str(workspace), "nothing-here"))
