"""The local artifact store as a real process: Bob's artifact contract, streaming to and
from disk, and names that cannot reach outside its directory."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.plugins.processes import artifact_store
from tests.waiting import wait_until

MB = 1024 * 1024


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("store")
    directory = tmp / "artifacts"
    with artifact_store(tmp, directory) as url:
        yield url, directory


def _pid_of(url: str) -> int:
    port = urlparse(url).port
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            inode = fields[9]
            break
    else:
        raise AssertionError("no listening socket")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(f"socket:[{inode}]" == str(fd.readlink()) for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError("no process owns the socket")


def test_ping_answers(store):
    url, _ = store
    assert httpx.get(f"{url}/ping").status_code == 200


def test_an_upload_is_kept_served_and_deleted(store):
    url, directory = store
    artifact = f"{url}/bob_artifact/dev/app/r-1/dist"
    body = bytes(range(256)) * 1000

    stored = httpx.post(artifact, content=body)
    fetched = httpx.get(artifact)
    assert stored.status_code == 200 and stored.json() == {"message": "Ok"}
    assert fetched.status_code == 200 and fetched.content == body
    assert (directory / "dev/app/r-1/dist").read_bytes() == body

    assert httpx.delete(artifact).status_code == 200
    assert httpx.get(artifact).status_code == 404
    assert httpx.delete(artifact).status_code == 404
    assert not (directory / "dev").exists()


def test_a_second_upload_replaces_the_first(store):
    url, _ = store
    artifact = f"{url}/bob_artifact/dev/app/r-2/dist"
    httpx.post(artifact, content=b"first")
    httpx.post(artifact, content=b"second")
    assert httpx.get(artifact).content == b"second"


@pytest.mark.parametrize(
    "path",
    [
        "%2E%2E/app/r-1/a",
        "dev/%2E%2E/r-1/a",
        "dev/app/r-1/%2E%2E",
        "dev/app/r-1/a%20b",
        "dev/app/r-1/" + "a" * 129,
    ],
)
def test_names_that_could_leave_the_directory_are_refused(store, path):
    url, directory = store
    before = _everything(directory.parent)
    r = httpx.post(f"{url}/bob_artifact/{path}", content=b"x")
    assert r.status_code == 400, r.text
    assert httpx.get(f"{url}/bob_artifact/{path}").status_code == 404
    assert _everything(directory.parent) == before


def _everything(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.name != "artifact-store.log"}


def test_an_upload_that_breaks_off_leaves_nothing(store):
    # Given an upload whose client goes away halfway through a chunked body
    url, directory = store
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port)) as s:
        s.sendall(
            b"POST /bob_artifact/dev/app/r-3/broken HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1024 + b"\r\n"
        )

    # Then no artifact is served and no partial file stays behind
    def gone() -> bool:
        return httpx.get(f"{url}/bob_artifact/dev/app/r-3/broken").status_code == 404 and not [
            p for p in (directory / "dev/app/r-3").glob("*") if p.name.startswith(".")
        ]

    wait_until(gone, timeout=10, what="the partial upload to be removed")


def test_a_large_artifact_streams_through_in_bounded_memory(store):
    url, _ = store
    artifact = f"{url}/bob_artifact/dev/app/r-4/big"
    total = 200 * MB

    def body() -> Iterator[bytes]:
        for _ in range(total // MB):
            yield b"z" * MB

    assert httpx.post(artifact, content=body(), timeout=60).status_code == 200
    received = 0
    with httpx.stream("GET", artifact, timeout=60) as r:
        for chunk in r.iter_bytes():
            received += len(chunk)
    assert received == total
    status = Path(f"/proc/{_pid_of(url)}/status").read_text()
    peak_kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:"))
    assert peak_kb < 120 * 1024
    httpx.delete(artifact)
