"""EngineCalls.attach, the last step's way into its container, against the real engine:
asyncio over the engine's Unix socket (AsyncCalls) and the SDK's attach socket on a thread
pool (SdkCalls). Both hand the step to the container's entry and give back its output,
frame by frame in the order written, all of it however much; both raise what the other
calls raise; and a cancelled attach or read leaves no connection open."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
import uuid

import docker
import docker.errors
import pytest
import requests
from docker.utils.socket import STDERR, STDOUT

from bob_common import event_loop
from runner_svc.executors.docker.client import (
    DOCKER_ERRORS,
    AsyncCalls,
    Attached,
    EngineCalls,
    unreachable,
)
from runner_svc.executors.docker.entry import ENTRY, final_step_input
from tests.runner.test_direct_calls import KINDS, _run
from tests.support.containers import remove_quietly
from tests.support.engine_proxy import ENGINE_SOCKET, EngineProxy


def _entry_container(docker_client, test_image, made: list) -> str:
    """A started build container as the runner makes it (the SDK's config of stdin_open
    has StdinOnce: stdin closes when the attach hangs up): the entry waits on its stdin."""
    api = docker_client.api
    created = api.create_container(
        test_image,
        entrypoint=ENTRY,
        stdin_open=True,
        labels={"bob.test": "attach"},
        host_config=api.create_host_config(network_mode="none"),
        name=f"bob-attach-{uuid.uuid4().hex[:8]}",
    )
    made.append(docker_client.containers.get(created["Id"]))
    api.start(created["Id"])
    return created["Id"]


async def _read_all(attached: Attached) -> list[tuple[int, bytes]]:
    pieces = []
    while (piece := await attached.read()) is not None:
        pieces.append(piece)
    return pieces


def _joined(pieces: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(data for kind, data in pieces if kind == stream)


@pytest.mark.parametrize("kind", KINDS)
def test_the_step_handed_over_runs_and_its_output_comes_in_order(kind, docker_client, test_image):
    made: list = []
    container = _entry_container(docker_client, test_image, made)
    # Lines on both streams, and a pause at each switch so that the engine's two copies
    # (one per stream) cannot overtake each other.
    step = (
        "for i in $(seq 1 50); do echo out$i; done; sleep 0.5; "
        "for i in $(seq 1 50); do echo err$i >&2; done; sleep 0.5; "
        'echo "$GREETING from $(pwd)"; exit 3'
    )
    given = final_step_input(step, {"GREETING": "hello there"}, "/tmp")
    assert given is not None

    async def scenario(calls: EngineCalls, _client) -> None:
        attached = await calls.attach(container)
        try:
            await attached.send(given)
            pieces = await _read_all(attached)
            assert await attached.read() is None  # ended for good
        finally:
            attached.close()
            attached.close()  # again: harmless
        # Each stream's bytes in the order written, and the streams in the order they took
        out = b"".join(f"out{i}\n".encode() for i in range(1, 51)) + b"hello there from /tmp\n"
        assert _joined(pieces, STDOUT) == out
        assert _joined(pieces, STDERR) == b"".join(f"err{i}\n".encode() for i in range(1, 51))
        kinds = [stream for stream, _ in pieces]
        switches = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
        assert switches == [STDOUT, STDERR, STDOUT]
        # And the container's exit code is the step's
        assert (await calls.wait(container))["StatusCode"] == 3

    try:
        _run(kind, scenario)
    finally:
        remove_quietly(made)


@pytest.mark.parametrize("kind", KINDS)
def test_megabytes_of_output_come_whole_even_when_read_late(kind, docker_client, test_image):
    """The reader stops for a while (as when the LogSink's queue is full): the engine
    stops copying and the step blocks on its pipe, and nothing is lost."""
    made: list = []
    container = _entry_container(docker_client, test_image, made)
    count = 1_000_000  # ~6.9 MB on stdout
    expected = hashlib.sha256(b"".join(b"%d\n" % i for i in range(1, count + 1))).hexdigest()
    given = final_step_input(f"seq 1 {count}; echo done >&2", {}, "/")
    assert given is not None
    read: dict[str, float] = {}

    async def scenario(calls: EngineCalls, _client) -> None:
        attached = await calls.attach(container)
        try:
            await attached.send(given)
            first = await attached.read()
            assert first is not None
            await asyncio.sleep(1.5)  # not reading
            started = time.monotonic()
            pieces = [first, *await _read_all(attached)]
            read["s"] = time.monotonic() - started
        finally:
            attached.close()
        out = _joined(pieces, STDOUT)
        read["mb"] = len(out) / 1e6
        assert hashlib.sha256(out).hexdigest() == expected
        assert _joined(pieces, STDERR) == b"done\n"
        assert (await calls.wait(container))["StatusCode"] == 0

    try:
        _run(kind, scenario)
    finally:
        remove_quietly(made)
    print(f"attach ({kind}): {read['mb']:.1f} MB of output read whole in {read['s']:.2f} s")


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_container_is_not_found_with_the_engines_message(kind, docker_client):
    missing = "bob-no-such-container-" + uuid.uuid4().hex[:8]

    async def scenario(calls: EngineCalls, _client) -> None:
        with pytest.raises(docker.errors.NotFound) as attach:
            await calls.attach(missing)
        with pytest.raises(docker.errors.NotFound) as sdk:
            docker_client.api.attach_socket(missing, params={"stdin": 1, "stream": 1})
        assert attach.value.explanation == sdk.value.explanation
        assert missing in attach.value.explanation
        assert not unreachable(attach.value)

    _run(kind, scenario)


def test_an_engine_that_cannot_be_reached_or_does_not_answer(tmp_path):
    """No socket: a ConnectionError, which unreachable() recognises. A socket that takes
    the connection and never answers: a timeout after the client's."""
    silent = _SilentEngine(tmp_path / "silent.sock")

    async def scenario() -> None:
        calls = AsyncCalls(f"{tmp_path}/none.sock", "1.41", timeout=5, max_pool_size=2)
        try:
            with pytest.raises(requests.ConnectionError) as away:
                await calls.attach("x")
            assert isinstance(away.value, DOCKER_ERRORS) and unreachable(away.value)
            assert "none.sock" in str(away.value)
        finally:
            await calls.close()
        calls = AsyncCalls(str(silent.path), "1.41", timeout=0.5, max_pool_size=2)
        try:
            started = time.monotonic()
            with pytest.raises(requests.Timeout) as late:
                await calls.attach("x")
            assert 0.4 < time.monotonic() - started < 30
            assert isinstance(late.value, DOCKER_ERRORS) and unreachable(late.value)
        finally:
            await calls.close()

    try:
        event_loop.run(scenario())
        # And the connection that timed out was closed, not left open
        assert silent.ended(1, timeout=10)
    finally:
        silent.close()


def test_a_cancelled_attach_leaves_no_connection_open(tmp_path):
    silent = _SilentEngine(tmp_path / "silent.sock")

    async def scenario() -> None:
        calls = AsyncCalls(str(silent.path), "1.41", timeout=60, max_pool_size=2)
        try:
            attaching = asyncio.ensure_future(calls.attach("x"))
            await asyncio.to_thread(silent.accepted, 1, 30)
            attaching.cancel()
            with pytest.raises(asyncio.CancelledError):
                await attaching
        finally:
            await calls.close()

    try:
        event_loop.run(scenario())
        # The engine's side sees the request, then the end of the connection
        assert silent.ended(1, timeout=10)
        assert silent.requests[0].startswith(b"POST /v1.41/containers/x/attach?stdin=1&stdout=1")
        assert b"Upgrade: tcp" in silent.requests[0]
    finally:
        silent.close()


@pytest.mark.parametrize("delay", [0, 0.5])
@pytest.mark.parametrize("kind", KINDS)
def test_a_cancelled_read_then_close_hangs_up(kind, delay, docker_client, test_image):
    """A run cancelled while its last step's output is awaited (the read under way, or
    only just asked for): closing the attach hangs up, which closes the container's stdin
    (StdinOnce), and the entry, given no step, exits 0."""
    made: list = []
    container = _entry_container(docker_client, test_image, made)

    async def scenario(calls: EngineCalls, _client) -> None:
        attached = await calls.attach(container)
        reading = asyncio.ensure_future(attached.read())
        await asyncio.sleep(delay)
        assert not reading.done()  # the entry prints nothing while it waits
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, *DOCKER_ERRORS):
            await reading
        attached.close()
        waited = await asyncio.wait_for(calls.wait(container), 60)
        assert waited["StatusCode"] == 0

    try:
        _run(kind, scenario)
    finally:
        remove_quietly(made)


def test_a_stream_cut_by_the_engine_going_away_ends_rather_than_hangs(
    tmp_path, docker_client, test_image
):
    made: list = []
    container = _entry_container(docker_client, test_image, made)
    proxy = EngineProxy(tmp_path / "engine.sock")
    proxy.up()
    version = docker.APIClient(base_url=f"unix://{ENGINE_SOCKET}", version="auto")
    api_version = version.api_version
    version.close()
    given = final_step_input("echo started; sleep 600", {}, "/")
    assert given is not None

    async def scenario() -> None:
        calls = AsyncCalls(str(proxy.path), api_version, timeout=10, max_pool_size=2)
        try:
            attached = await calls.attach(container)
            try:
                await attached.send(given)
                assert await attached.read() == (STDOUT, b"started\n")
                proxy.down()
                # The end of the stream, or an error that says the engine was not reached
                try:
                    ended = await asyncio.wait_for(attached.read(), 30)
                    assert ended is None
                except requests.ConnectionError as exc:
                    assert unreachable(exc)
            finally:
                attached.close()
        finally:
            await calls.close()

    try:
        event_loop.run(scenario())
    finally:
        proxy.down()
        remove_quietly(made)


class _SilentEngine:
    """A Unix socket that takes connections and reads what comes, never answering; it
    records each request and whether its connection was closed by the client."""

    def __init__(self, path) -> None:
        self.path = path
        self.requests: list[bytes] = []
        self._ends = 0
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(conn)
                self.requests.append(b"")
                index = len(self.requests) - 1
            threading.Thread(target=self._read, args=(conn, index), daemon=True).start()

    def _read(self, conn: socket.socket, index: int) -> None:
        try:
            while data := conn.recv(65536):
                with self._lock:
                    self.requests[index] += data
        except OSError:
            pass
        with self._lock:
            self._ends += 1

    def accepted(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count and all(self.requests):
                    return
            time.sleep(0.02)
        raise AssertionError(f"no {count} request(s) within {timeout} s")

    def ended(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._ends >= count:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._server.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()
