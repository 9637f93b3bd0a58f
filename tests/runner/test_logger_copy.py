"""A run started with a logger: every line of its log also goes to the logger, in order,
while a logger that is down, slow or silent never fails or slows the run; the run's own
log says when the logger's copy is incomplete, and the copy says where lines are missing."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from bob_pb import messages_pb2
from devcluster.cluster import free_port
from devcluster.test_image import IMAGE
from runner_svc.reporting import logger_copy
from runner_svc.reporting.logger_copy import LogCopy
from tests.plugins.processes import logger
from tests.runner.harness import make_job, world
from tests.waiting import await_until

INCOMPLETE = "its copy of this log is incomplete (this log is complete)"


@pytest.fixture(scope="module")
def logger_url(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("logger")
    with logger(tmp, tmp / "logs") as url:
        yield url


async def _copied(url: str, run_id: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{url}/bob_logs/{run_id}")
    return r.text.splitlines() if r.status_code == 200 else []


def test_every_line_of_the_run_reaches_the_logger_in_order(runner_type, rabbit_url, logger_url):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            # Given a registered logger and a run started with it
            w.entities.loggers["local"] = logger_url
            job = make_job(
                IMAGE,
                ["seq 1 3000", "echo to stderr >&2; echo done ✓"],
                runner_type=runner_type,
                logger="local",
            )
            # When the run goes through
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.status == messages_pb2.PASSED, final.reason
            # Then the logger has every line the run's log has, in the same order
            logged = w.tap.texts(job.run_id)
            assert len(logged) > 3000 and logged[-1] == "[bob] run passed"

            async def all_copied() -> bool:
                return await _copied(logger_url, job.run_id) == logged

            try:
                await await_until(all_copied, timeout=15, what="the logger's copy")
            except AssertionError:
                copied = await _copied(logger_url, job.run_id)
                raise AssertionError(
                    f"{len(copied)} of {len(logged)} lines copied; "
                    f"first difference at {_first_difference(copied, logged)}"
                ) from None

    asyncio.run(scenario())


def _first_difference(a: list[str], b: list[str]) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def test_a_run_without_a_logger_sends_nothing_anywhere(rabbit_url, logger_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            w.entities.loggers["local"] = logger_url
            job = make_job(test_image, ["echo hello"])
            await w.publish(job)
            assert (await w.tap.terminal(job.run_id)).status == messages_pb2.PASSED
            assert await _copied(logger_url, job.run_id) == []

    asyncio.run(scenario())


def test_a_dead_logger_neither_fails_nor_slows_the_run(rabbit_url, test_image, caplog):
    # Enough output to fill the copy's buffer several times over.
    steps = ["seq 1 200000", "echo after"]
    caplog.set_level(logging.INFO, logger="runner_svc")

    async def timed(w, job) -> float:
        started = time.monotonic()
        await w.publish(job)
        final = await w.tap.terminal(job.run_id, timeout=60)
        assert final.status == messages_pb2.PASSED, final.reason
        return time.monotonic() - started

    async def scenario() -> None:
        async with world(rabbit_url) as w:
            # Given a logger registered at an address where nothing listens
            w.entities.loggers["dead"] = f"http://127.0.0.1:{free_port()}"
            baseline = await timed(w, make_job(test_image, steps))
            # When a run with it prints more than the copy may hold
            job = make_job(test_image, steps, logger="dead")
            took = await timed(w, job)
            # Then the run passes about as fast as without a logger, its log whole
            assert took < 1.5 * baseline + 2, (took, baseline)
            texts = w.tap.texts(job.run_id)
            assert texts.count("after") == 1 and texts[-1] == "[bob] run passed"
            assert [t for t in texts if t.startswith("[bob]")] == [
                "[bob] step 1/2: seq 1 200000",
                f"[bob] logger dead is down or slow: {INCOMPLETE}",
                "[bob] step 2/2: echo after",
                "[bob] run passed",
            ]
            assert len([t for t in texts if t.isdigit()]) == 200000
            # And the runner's log says so once
            warnings = [
                r
                for r in caplog.records
                if r.name == "runner_svc.logger_copy" and r.levelno == logging.WARNING
            ]
            assert len(warnings) == 1 and job.run_id in warnings[0].getMessage()

    asyncio.run(scenario())


@pytest.fixture
def silent_logger() -> Iterator[str]:
    """Accepts connections and reads them, but never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in accepted:
            conn.close()


def test_a_logger_that_never_answers_does_not_hold_the_run(rabbit_url, test_image, silent_logger):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            w.entities.loggers["silent"] = silent_logger
            job = make_job(test_image, ["echo one", "echo two"], logger="silent")
            started = time.monotonic()
            await w.publish(job)
            final = await w.tap.terminal(job.run_id, timeout=20)
            assert final.status == messages_pb2.PASSED
            assert time.monotonic() - started < 10
            assert w.tap.texts(job.run_id)[-1] == "[bob] run passed"
            # And the runner stops without waiting for the logger for long
            stopping = time.monotonic()
            w.signal()
            await w.stopped(timeout=30)
            assert time.monotonic() - stopping < logger_copy.SHUTDOWN_GRACE_S + 5

    asyncio.run(scenario())


# --- the copy on its own, against a logger played by httpx's MockTransport ----------


class PlayedLogger:
    """A logger whose answer the test sets; the lines of every PUT it took, in order."""

    def __init__(self) -> None:
        self.status = 200
        self.lines: list[str] = []
        self.puts = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.puts += 1
        assert request.method == "PUT" and request.url.path == "/bob_logs/r-1"
        assert request.headers["content-type"] == "text/plain; charset=utf-8"
        body = request.content.decode()
        assert body.endswith("\n")
        if self.status == 200:
            self.lines.extend(body.splitlines())
        return httpx.Response(self.status, json={"message": "..."})


def _copy(played: PlayedLogger, **kwargs) -> tuple[LogCopy, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(played.handle))

    async def lookup(name: str) -> str:
        assert name == "played"
        return "http://logger.test/"

    return LogCopy(run_id="r-1", logger="played", lookup=lookup, http=http, **kwargs), http


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(logger_copy, "RETRY_MIN_S", 0.01)
    monkeypatch.setattr(logger_copy, "RETRY_MAX_S", 0.05)


def test_lines_dropped_while_the_logger_was_down_are_marked_where_they_are_missing(
    quick_retries, caplog
):
    played = PlayedLogger()
    line_cost = 1 + logger_copy.LINE_OVERHEAD

    async def scenario() -> None:
        copy, http = _copy(played, max_buffered=10 * line_cost)
        # Given a logger that is down
        played.status = 503
        assert copy.add(["a", "b"]) == ""
        await await_until(_async(lambda: played.puts >= 2), what="retries")
        # When the run prints more than the copy holds
        said = [copy.add([str(n)]) for n in range(20)]
        # Then the run's log is told once, with the first line dropped
        assert [s for s in said if s] == [f"logger played is down or slow: {INCOMPLETE}"]
        # And once the logger is back, the kept lines go first, then a line says how many
        # are missing, then the next ones
        played.status = 200
        await await_until(_async(lambda: len(played.lines) == 10), what="the kept lines")
        assert copy.add(["z"]) == ""
        copy.end()
        await await_until(_async(lambda: len(played.lines) == 12), what="the rest")
        await http.aclose()

    asyncio.run(scenario())
    assert played.lines == [
        "a",
        "b",
        *[str(n) for n in range(8)],
        "[bob] 12 lines of this run's log are missing here: the logger was down, slow or "
        "refused them",
        "z",
    ]
    warnings = [r for r in caplog.records if r.name == "runner_svc.logger_copy"]
    assert len(warnings) == 1


def test_a_batch_the_logger_refuses_is_dropped_not_retried(quick_retries):
    played = PlayedLogger()

    async def scenario() -> None:
        copy, http = _copy(played)
        played.status = 400
        copy.add(["refused"])
        await await_until(_async(lambda: copy.waiting == 0), what="the PUT")
        played.status = 200
        # The run's log hears of it with the next lines
        said = copy.add(["kept"])
        assert said == f"logger played refused lines (400): {INCOMPLETE}"
        await await_until(_async(lambda: played.lines), what="the next PUT")
        await http.aclose()

    asyncio.run(scenario())
    assert played.puts == 2
    assert played.lines == [
        "[bob] 1 lines of this run's log are missing here: the logger was down, slow or "
        "refused them",
        "kept",
    ]


def test_lines_waiting_at_the_end_get_a_deadline_and_the_run_is_told(quick_retries, caplog):
    played = PlayedLogger()
    played.status = 503

    async def scenario() -> None:
        copy, http = _copy(played, end_flush_s=0.3)
        copy.add(["one"])
        await await_until(_async(lambda: played.puts >= 2), what="a failed PUT")
        # At the end, while the logger fails: the run's log is told, before its status
        said = copy.ending()
        # The run's log is told the status, not the logger's URL (README: Plugin URLs)
        assert said.startswith("logger played is unreachable (answered 503)")
        assert said.endswith(INCOMPLETE)
        started = time.monotonic()
        copy.end()
        await await_until(
            _async(lambda: any("not sent" in r.getMessage() for r in caplog.records)),
            what="the give-up",
        )
        assert time.monotonic() - started < 2
        await http.aclose()

    asyncio.run(scenario())


def _async(probe):
    async def check():
        return probe()

    return check
