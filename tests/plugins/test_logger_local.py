"""The local logger as a real process: Bob's logger contract (append, read, follow,
delete, ping), whole PUTs only, a cap on each PUT, and run ids that cannot reach outside
its directory."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from bob_plugins.logger_local import MAX_PUT_BYTES
from tests.plugins.processes import logger
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("logger")
    directory = tmp / "logs"
    with logger(tmp, directory) as url:
        yield url, directory


def _raw(url: str, request: bytes) -> bytes:
    """Sends `request` as is and answers the status line."""
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as s:
        s.sendall(request)
        return s.makefile("rb").readline()


class Follower:
    """GET ?follow=true on a thread of its own: its lines arrive in `lines`, None once the
    stream has ended."""

    def __init__(self, url: str) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.status = 0
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, params={"follow": "true"}, timeout=30) as r:
                self.status = r.status_code
                for line in r.iter_lines():
                    self.lines.put(line)
        finally:
            self.lines.put(None)

    def take(self, n: int, timeout: float = 10) -> list[str | None]:
        return [self.lines.get(timeout=timeout) for _ in range(n)]

    def ended(self, timeout: float = 10) -> bool:
        return self.lines.get(timeout=timeout) is None


def test_ping_answers(logs):
    url, _ = logs
    assert httpx.get(f"{url}/ping").status_code == 200


def test_puts_append_whole_lines_in_order_and_get_answers_them(logs):
    url, directory = logs
    run = f"{url}/bob_logs/r-append"

    first = httpx.put(run, content=b"one\ntwo\n")
    # Bob's own runner sends a line without its newline: it still ends up a line of its own.
    second = httpx.put(run, content=b"three")
    third = httpx.put(run, content="vier ✓\n".encode())
    fetched = httpx.get(run)

    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert first.json() == {"message": "Ok"}
    assert fetched.status_code == 200
    assert fetched.headers["content-type"].startswith("text/plain")
    assert fetched.text == "one\ntwo\nthree\nvier ✓\n"
    assert (directory / "r-append").read_text() == fetched.text


def test_an_empty_put_appends_nothing(logs):
    url, _ = logs
    run = f"{url}/bob_logs/r-empty"
    httpx.put(run, content=b"a\n")
    assert httpx.put(run, content=b"").status_code == 200
    assert httpx.get(run).text == "a\n"


def test_delete_removes_the_log_and_is_idempotent(logs):
    url, directory = logs
    run = f"{url}/bob_logs/r-delete"
    httpx.put(run, content=b"line\n")

    assert httpx.delete(run).status_code == 200
    assert httpx.get(run).status_code == 404
    assert not (directory / "r-delete").exists()
    assert httpx.delete(run).status_code == 200


def test_a_log_never_written_is_not_found(logs):
    url, _ = logs
    r = httpx.get(f"{url}/bob_logs/r-never")
    assert r.status_code == 404 and r.json() == {"message": "Run not found"}
    assert httpx.get(f"{url}/bob_logs/r-never", params={"follow": "true"}).status_code == 404


@pytest.mark.parametrize("run_id", ["%2E%2E", "%2E", ".hidden", "a%20b", "a" * 129, "r%0A1"])
def test_run_ids_that_could_leave_the_directory_are_refused(logs, run_id):
    url, directory = logs
    before = _everything(directory)
    r = httpx.put(f"{url}/bob_logs/{run_id}", content=b"x\n")
    assert r.status_code == 400, r.text
    assert httpx.get(f"{url}/bob_logs/{run_id}").status_code == 404
    assert httpx.delete(f"{url}/bob_logs/{run_id}").status_code == 400
    assert _everything(directory) == before


def _everything(root: Path) -> set[Path]:
    return set(root.parent.rglob("*")) - {root.parent / "logger.log"}


def test_a_put_declared_over_the_cap_is_refused_unread(logs):
    url, directory = logs
    status = _raw(
        url,
        (
            b"PUT /bob_logs/r-big HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: " + str(MAX_PUT_BYTES + 1).encode() + b"\r\n\r\nabc\n"
        ),
    )
    assert status.split()[1] == b"413"
    assert httpx.get(f"{url}/bob_logs/r-big").status_code == 404


def test_a_streamed_put_over_the_cap_appends_nothing(logs):
    # Given a log, and a chunked PUT (no length declared) that goes over the cap
    url, directory = logs
    run = f"{url}/bob_logs/r-big-stream"
    httpx.put(run, content=b"before\n")

    def body() -> Iterator[bytes]:
        line = b"y" * 1023 + b"\n"
        for _ in range(MAX_PUT_BYTES // len(line) + 64):
            yield line * 1

    try:
        status = httpx.put(run, content=body(), timeout=30).status_code
    except httpx.TransportError:  # the logger may close before the whole body is sent
        status = 413
    # Then it is refused, and the log and the directory are as before
    assert status == 413
    assert httpx.get(run).text == "before\n"
    wait_until(
        lambda: not list(directory.glob(".*")), timeout=10, what="the partial body to be removed"
    )


def test_a_put_that_breaks_off_appends_nothing(logs):
    url, directory = logs
    run = f"{url}/bob_logs/r-broken"
    httpx.put(run, content=b"kept\n")
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port)) as s:
        s.sendall(
            b"PUT /bob_logs/r-broken HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"6\r\nhalf\nl\r\n"
        )
    wait_until(
        lambda: not list(directory.glob(".*")), timeout=10, what="the partial body to be removed"
    )
    assert httpx.get(run).text == "kept\n"


def test_concurrent_puts_never_interleave(logs):
    url, _ = logs
    run = f"{url}/bob_logs/r-concurrent"

    def put(n: int) -> int:
        body = "".join(f"{n}:{i}\n" for i in range(2000)).encode()
        return httpx.put(run, content=body, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(put, range(16))) == {200}
    lines = httpx.get(run).text.splitlines()
    assert len(lines) == 16 * 2000
    blocks = [lines[i : i + 2000] for i in range(0, len(lines), 2000)]
    for block in blocks:
        n = block[0].split(":")[0]
        assert block == [f"{n}:{i}" for i in range(2000)]


def test_follow_streams_the_log_then_what_is_appended_until_it_is_deleted(logs):
    url, _ = logs
    run = f"{url}/bob_logs/r-follow"
    httpx.put(run, content=b"old 1\nold 2\n")

    follower = Follower(run)
    assert follower.take(2) == ["old 1", "old 2"]
    httpx.put(run, content=b"new 1\n")
    assert follower.take(1) == ["new 1"]
    httpx.put(run, content=b"new 2\nnew 3")
    assert follower.take(2) == ["new 2", "new 3"]
    assert follower.status == 200

    httpx.delete(run)
    assert follower.ended()


def test_a_follower_that_leaves_is_let_go(logs):
    url, _ = logs
    run = f"{url}/bob_logs/r-leaves"
    httpx.put(run, content=b"a\n")
    with httpx.stream("GET", run, params={"follow": "true"}, timeout=10) as r:
        assert next(r.iter_lines()) == "a"
    # The logger goes on serving, and appends are not held by the gone follower.
    assert httpx.put(run, content=b"b\n").status_code == 200
    assert httpx.get(run).text == "a\nb\n"


def test_a_followed_log_closes_once_idle(tmp_path):
    with logger(tmp_path, tmp_path / "logs", BOB_LOGGER_FOLLOW_IDLE_S="1.5") as url:
        run = f"{url}/bob_logs/r-idle"
        httpx.put(run, content=b"a\n")
        follower = Follower(run)
        assert follower.take(1) == ["a"]
        started = time.monotonic()
        # Lines keep it open...
        for n in range(3):
            time.sleep(0.5)
            httpx.put(run, content=f"{n}\n".encode())
            assert follower.take(1) == [str(n)]
        # ...and without them it closes after the idle time.
        assert follower.ended(timeout=10)
        assert time.monotonic() - started >= 1.5 + 1.5
