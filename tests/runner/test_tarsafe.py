"""The tar checks both executors share: what a provider's archive may contain, and that
nothing ever lands outside the directory it is meant for."""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import os
import tarfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from bob_common.config import ConfigError, RunnerSettings
from runner_svc.errors import ArchiveRejected
from runner_svc.executors import tarsafe
from runner_svc.tuning import Tuning
from tests.support import tar_bombs
from tests.support.tar_bombs import DIR, LNK, REG, SYM, archive


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
    # Headers count: a's header and its content padded to blocks, then b's.
    end = 512 + 1024 + 512 + 512
    assert len(rewritten(data, caps=tarsafe.Caps(max_bytes=end))) == 3
    assert rejection(data, caps=tarsafe.Caps(max_bytes=end - 1)) == (
        f"archive is larger than {end - 1} bytes unpacked, headers included "
        "(BOB_RUNNER_ARCHIVE_MAX_BYTES)"
    )


def test_the_size_limit_bounds_the_uncompressed_content_of_a_compressed_archive():
    bomb = gzip.compress(archive(("zeros", REG, b"\0" * 5_000_000)))
    assert len(bomb) < 10_000
    assert "BOB_RUNNER_ARCHIVE_MAX_BYTES" in rejection(bomb, caps=tarsafe.Caps(max_bytes=1_000_000))


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


# --- caps: bombs and floods ---------------------------------------------------------

E2E = tarsafe.Caps(**tar_bombs.E2E_CAPS)


class Pulled:
    """An iterator of chunks that counts the bytes taken from it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.bytes = chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.bytes += len(chunk)
            yield chunk


@pytest.mark.parametrize("bomb", tar_bombs.corpus("/tmp/bob-outside"), ids=lambda b: b.name)
def test_every_bomb_of_the_corpus_is_rejected_naming_its_cap_or_rule(bomb):
    body = bomb.body if bomb.body is not None else tar_bombs.zeros_forever()
    with pytest.raises(ArchiveRejected) as caught:
        b"".join(tarsafe.rewrite(iter(chunked(body, 65536)) if bomb.body else body, "res", E2E))
    assert bomb.reason in str(caught.value)


def test_headers_count_against_the_size_limit():
    # Tiny content, long names: the pax headers carrying them are what is big.
    data = archive(*((f"{'d' * 200}/{n:0200d}", REG, b"x") for n in range(20)))
    assert "BOB_RUNNER_ARCHIVE_MAX_BYTES" in rejection(data, caps=tarsafe.Caps(max_bytes=20_000))
    assert len(rewritten(data, caps=tarsafe.Caps(max_bytes=len(data)))) == 21


def test_a_pax_header_over_its_cap_is_refused_before_it_is_read():
    bomb = tar_bombs.pax_header_bomb()
    pulled = Pulled(chunked(bomb, 4096))
    with pytest.raises(ArchiveRejected, match="BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES"):
        b"".join(tarsafe.rewrite(pulled, "res", E2E))
    # 64 MiB declared, next to nothing inflated: the header's own block decides
    assert pulled.bytes <= 16 * 4096


def test_a_gnu_long_name_counts_as_an_extended_header():
    data = archive(("n/" * 300 + "x", REG, b"x"), fmt=tarfile.GNU_FORMAT)
    assert "BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES" in rejection(
        data, caps=tarsafe.Caps(max_header_bytes=512)
    )
    assert rewritten(data)[-1][0] == "res/" + "n/" * 300 + "x"


def test_a_chain_of_extended_headers_before_one_entry_is_refused():
    one = tarfile.TarInfo("././@PaxHeader")
    one.type = tarfile.XHDTYPE
    record = b"13 comment=x\n"
    one.size = len(record)
    block = one.tobuf(tarfile.USTAR_FORMAT) + record + b"\0" * (512 - len(record))
    data = block * 50 + tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT) + b"\0" * 1024
    assert "more than 8 extended headers" in rejection(data)


def test_a_small_global_header_is_accepted_and_a_big_one_is_not():
    def with_global(comment: str) -> bytes:
        out = io.BytesIO()
        with tarfile.open(
            fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": comment}
        ) as tar:
            tar.addfile(tarfile.TarInfo("f"), io.BytesIO(b""))
        return out.getvalue()

    # git archive writes one with the commit id
    assert rewritten(with_global("a" * 40))[-1][0] == "res/f"
    assert "global pax headers exceed" in rejection(with_global("a" * 5000))


def test_more_entries_than_the_cap_are_refused_and_as_many_are_not():
    data = archive(*((f"f{n}", REG, b"") for n in range(10)))
    assert len(rewritten(data, caps=tarsafe.Caps(max_entries=10))) == 11
    assert rejection(data, caps=tarsafe.Caps(max_entries=9)) == (
        "archive has more than 9 entries (BOB_RUNNER_ARCHIVE_MAX_ENTRIES)"
    )


def test_an_endless_gzip_bomb_stops_at_the_cap_without_inflating_the_rest():
    pulled = Pulled(tar_bombs.zeros_forever())
    with pytest.raises(ArchiveRejected, match="BOB_RUNNER_ARCHIVE_MAX_BYTES"):
        b"".join(tarsafe.rewrite(pulled, "res", tarsafe.Caps(max_bytes=4 << 20)))
    # 4 MiB of zeros is a few KiB of gzip: only about that much was read
    assert pulled.bytes < 64 * 1024


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_bzip2_and_xz_bombs_stop_at_the_cap_and_their_archives_are_read(compress):
    assert rewritten(compress(archive(("a.txt", REG, b"packed"))))[-1] == (
        "res/a.txt",
        REG,
        "",
        b"packed",
    )
    bomb = compress(archive(*((f"z{n}", REG, b"\0" * 1_000_000) for n in range(8))))
    assert "BOB_RUNNER_ARCHIVE_MAX_BYTES" in rejection(bomb, caps=tarsafe.Caps(max_bytes=2_000_000))


def test_a_concatenated_gzip_is_read_whole():
    data = archive(("a.txt", REG, b"x" * 100_000), ("b.txt", REG, b"y"))
    half = len(data) // 2
    two = gzip.compress(data[:half]) + gzip.compress(data[half:])
    assert [m[0] for m in rewritten(two)] == ["res", "res/a.txt", "res/b.txt"]


def test_names_longer_than_the_file_system_takes_are_refused():
    assert "over the limit of 3072 bytes" in rejection(archive(("a/" * 2000 + "x", REG, b"")))
    assert "component over the limit of 255" in rejection(archive(("n" * 256, REG, b"")))
    assert rewritten(archive(("n" * 255, REG, b"")))[-1][0] == "res/" + "n" * 255


def test_a_sparse_file_is_refused():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("GNUSparseFile.0/f")
        info.pax_headers = {
            "GNU.sparse.major": "1",
            "GNU.sparse.minor": "0",
            "GNU.sparse.name": "f",
            "GNU.sparse.realsize": "1000000000",
        }
        body = b"1\n0\n1\n".ljust(512, b"\0") + b"x"
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    assert "is a sparse file" in rejection(out.getvalue())


def test_checking_many_entries_keeps_memory_small():
    data = tar_bombs.empty_entries(5_000)
    tracemalloc.start()
    try:
        for _ in tarsafe.rewrite(chunked(data, 65536), "res"):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # tarfile alone keeps every entry's TarInfo: 3.4 MB here, 1 MB without
    assert peak < 2 << 20, peak


def test_the_caps_are_runner_settings_with_defaults_that_take_real_archives():
    runner = RunnerSettings.from_env({})
    assert (
        Tuning.from_settings(runner).archive_caps
        == tarsafe.DEFAULT_CAPS
        == tarsafe.Caps(max_bytes=1 << 30, max_entries=100_000, max_header_bytes=1 << 20)
    )
    assert runner.artifact_max_bytes == 1 << 30
    given = RunnerSettings.from_env(
        {
            "BOB_RUNNER_ARCHIVE_MAX_BYTES": "5000",
            "BOB_RUNNER_ARCHIVE_MAX_ENTRIES": "7",
            "BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES": "2048",
            "BOB_RUNNER_ARTIFACT_MAX_BYTES": "9000",
        }
    )
    assert Tuning.from_settings(given).archive_caps == tarsafe.Caps(5000, 7, 2048)
    assert Tuning.from_settings(given).artifact_max_bytes == 9000
    for name in ("BOB_RUNNER_ARCHIVE_MAX_ENTRIES", "BOB_RUNNER_ARTIFACT_MAX_BYTES"):
        with pytest.raises(ConfigError, match=name):
            RunnerSettings.from_env({name: "0"})


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
