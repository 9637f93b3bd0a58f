"""The docker SDK client of a runner, made for many short calls to a local engine, and
the calls every run makes (EngineCalls), async on the event loop when the engine is on a
Unix socket.

The SDK keeps one connection pool per request URL on a Unix socket, and every container
has URLs of its own: each call on a new container opened a connection, and pools beyond
the 25 most recent were closed. Here one pool serves the engine, so connections are
reused, and the socket's requests skip the proxy and netrc lookups of the environment,
which do not apply to a Unix socket anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import aiohttp
import docker
import docker.errors
import requests
from docker.transport.unixconn import UnixHTTPAdapter
from docker.utils.socket import frames_iter

MOUNT = "http+docker://"
# The container's own stdio, for the last step run by its entry (entry.py).
ATTACH = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
# A frame of an attached non-TTY container's output: its stream (1 stdout, 2 stderr), 3
# bytes of padding and its payload's size, big-endian (docker.utils.socket.frames_iter).
FRAME_HEADER = struct.Struct(">BxxxL")
# The most of a frame's payload read() hands out at once.
READ_CHUNK = 64 * 1024

# Everything the docker SDK (and EngineCalls) raise when the engine refuses or cannot be
# reached.
DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)
# Runs a blocking function on a thread pool: DockerExecutor.call.
Call = Callable[..., Awaitable[Any]]


def unreachable(exc: BaseException) -> bool:
    """Whether the engine could not be reached at all (as opposed to an answer refusing).
    requests' errors are OSErrors, the SDK's error answers (APIError) among them: those
    are answers, however they are classed."""
    if isinstance(exc, requests.HTTPError | docker.errors.DockerException):
        return False
    return isinstance(exc, requests.ConnectionError | requests.Timeout | OSError)


def explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


class _OnePoolAdapter(UnixHTTPAdapter):
    def get_connection(self, url: str, proxies: Any = None) -> Any:
        return super().get_connection(MOUNT, proxies)


class Attached(Protocol):
    """A container's stdio, attached (EngineCalls.attach). Its methods raise what
    EngineCalls' do when the engine cannot be reached."""

    async def send(self, data: bytes) -> None:
        """Writes `data` to the container's stdin."""
        ...

    async def read(self) -> tuple[int, bytes] | None:
        """The container's output as it comes, (stream, bytes) in the order written, the
        stream as in docker.utils.socket (STDOUT, STDERR); None once it has ended (the
        container stopped). A frame may come in pieces."""
        ...

    def close(self) -> None:
        """Hangs up for good, at once; again is harmless."""
        ...


class EngineCalls(Protocol):
    """The Engine API calls every run makes: look up its image, and inspect, rename,
    create, start, attach to, wait for and remove its container. They raise what the SDK's calls
    raise: docker.errors.NotFound (ImageNotFound for an image) or APIError, with the
    engine's message as the explanation, for an error answer; a requests.ConnectionError
    (which unreachable() recognises) when the engine cannot be reached; requests' Timeout
    when it does not answer within the client's timeout (wait() has none)."""

    async def image_id(self, name: str) -> str: ...

    async def inspect_container(self, container_id: str) -> dict[str, Any]: ...

    async def rename(self, container_id: str, name: str) -> None: ...

    async def create_container(self, config: dict[str, Any], name: str) -> dict[str, Any]: ...

    async def start(self, container_id: str) -> None: ...

    async def attach(self, container_id: str) -> Attached:
        """The container's stdin, stdout and stderr, as `docker attach` has them (a
        container made without a TTY). Cancelled, it leaves no connection open."""
        ...

    async def wait(self, container_id: str) -> dict[str, Any]:
        """Until the container stops, however long (a build may last hours); cancellable."""
        ...

    async def remove(self, container_id: str, *, force: bool, v: bool) -> None: ...

    async def close(self) -> None: ...


class AsyncCalls:
    """EngineCalls over aiohttp on the runner's event loop, for an engine on a Unix socket.

    Through the SDK a call costs a hop to a thread and back, and requests', urllib3's and
    http.client's Python (http.client parses headers with the `email` package): ~0.55 ms
    of CPU a call, ~0.36 straight over urllib3, ~0.14 here, where the HTTP parser is C and
    the answer is awaited on the loop itself. A run makes eight. One session, made on the
    running loop, keeps at most `max_pool_size` connections (kept alive while idle, as
    the SDK's pool does); one the engine closed (e.g. restarted) is dropped, and the
    next call opens a new one."""

    def __init__(
        self, socket_path: str, version: str, timeout: float | None, max_pool_size: int
    ) -> None:
        # The SDK's URLs: /v<the API version the client negotiated>/...
        self._prefix = f"/v{version}"
        self._socket_path = socket_path
        self._timeout_s = timeout
        # As the SDK's pool: `timeout` to connect and for each read; wait() has no read
        # timeout. No `total`: a slow but steady answer is an answer.
        self._timeout = aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout)
        self._no_read_timeout = aiohttp.ClientTimeout(sock_connect=timeout)
        self._session = aiohttp.ClientSession(
            "http://localhost",
            connector=aiohttp.UnixConnector(socket_path, limit=max_pool_size),
            timeout=self._timeout,
            # Nothing to negotiate with a local engine: only the headers a call needs.
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def image_id(self, name: str) -> str:
        return (await self._call("GET", f"/images/{_quote(name)}/json"))["Id"]  # type: ignore[no-any-return]

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/containers/{_quote(container_id)}/json")  # type: ignore[no-any-return]

    async def rename(self, container_id: str, name: str) -> None:
        await self._call("POST", f"/containers/{_quote(container_id)}/rename", {"name": name})

    async def create_container(self, config: dict[str, Any], name: str) -> dict[str, Any]:
        # As the SDK sends it: no null at the top level (old engines refuse them).
        body = {key: value for key, value in config.items() if value is not None}
        return await self._call("POST", "/containers/create", {"name": name}, body=body)  # type: ignore[no-any-return]

    async def start(self, container_id: str) -> None:
        await self._call("POST", f"/containers/{_quote(container_id)}/start")

    async def attach(self, container_id: str) -> Attached:
        """The Engine API's hijacked attach, on a connection of its own: the engine answers
        101 (older ones 200) and the connection then carries the raw streams both ways.
        Raw asyncio rather than aiohttp: aiohttp leaves an upgraded connection's bytes to
        a parser set through its protocol's internals (set_parser), as its websockets do.
        The client's timeout bounds the connect and the answer; the stream has none (a
        step may be silent for hours)."""
        url = f"{self._prefix}/containers/{_quote(container_id)}/attach?{urlencode(ATTACH)}"
        request = f"POST {url}"
        connected: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                try:
                    reader, connected = await asyncio.open_unix_connection(self._socket_path)
                except OSError as exc:  # no socket, refused: not reached
                    raise requests.ConnectionError(
                        f"cannot connect to {self._socket_path}: {exc}"
                    ) from exc
                connected.write(
                    f"{request} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
                    "Upgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
                )
                status, headers = await _answer_head(reader)
                if status >= 400:
                    raise _api_error(status, await _answer_body(reader, headers), request)
            attached = _Hijacked(reader, connected)
            connected = None
            return attached
        except requests.RequestException:  # raised above (APIError is one)
            raise
        except TimeoutError as exc:
            kind = requests.ReadTimeout if connected else requests.ConnectTimeout
            raise kind(f"no answer to {request} within {self._timeout_s} s") from exc
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            # Reset, closed before its answer, or an answer that is no HTTP: not reached.
            raise requests.ConnectionError(f"{request}: {exc!r}") from exc
        finally:
            if connected is not None:  # an error answer, a failure or a cancellation
                connected.transport.abort()

    async def wait(self, container_id: str) -> dict[str, Any]:
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/containers/{_quote(container_id)}/wait", timeout=self._no_read_timeout
        )

    async def remove(self, container_id: str, *, force: bool, v: bool) -> None:
        params = {"force": int(force), "v": int(v), "link": 0}
        await self._call("DELETE", f"/containers/{_quote(container_id)}", params)

    async def close(self) -> None:
        await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        body: dict[str, Any] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        url = self._prefix + path
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                json=body,
                timeout=timeout or self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                data = await response.read()
        # What requests raises for the same failures, which the SDK's callers know.
        except aiohttp.ConnectionTimeoutError as exc:
            raise requests.ConnectTimeout(exc) from exc
        except TimeoutError as exc:  # aiohttp's read timeout is one
            raise requests.ReadTimeout(f"no answer to {method} {url}: {exc!r}") from exc
        except aiohttp.ClientError as exc:  # refused, reset, closed: not reached
            raise requests.ConnectionError(exc) from exc
        if status >= 400:
            raise _api_error(status, data, f"{method} {url}")
        return json.loads(data) if data else None


class _Hijacked:
    """An attach connection taken over from HTTP (AsyncCalls.attach): stdin out, the
    multiplexed output in. While nobody reads, the reader's buffer fills, the transport
    stops reading and the engine stops copying the container's output."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._stream = 0
        self._left = 0  # of the current frame's payload

    async def send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise requests.ConnectionError(f"writing to the attached container: {exc}") from exc

    async def read(self) -> tuple[int, bytes] | None:
        try:
            while not self._left:
                header = await self._reader.readexactly(FRAME_HEADER.size)
                self._stream, self._left = FRAME_HEADER.unpack(header)
            data = await self._reader.read(min(self._left, READ_CHUNK))
        except asyncio.IncompleteReadError:
            return None  # ended between frames (or, as frames_iter takes it, in a header)
        except OSError as exc:
            raise requests.ConnectionError(f"reading the attached container: {exc}") from exc
        if not data:
            return None
        self._left -= len(data)
        return self._stream, data

    def close(self) -> None:
        # abort, not close: nothing left to flush, and the socket goes at once.
        self._writer.transport.abort()


async def _answer_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status and the headers (names lowered) of an HTTP answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(rest[:3]), headers


async def _answer_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    """The body of an error answer: the engine's JSON message, by its length, chunked,
    or up to the end of the connection."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        return body
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read(READ_CHUNK)


def _quote(segment: str) -> str:
    """A path segment quoted as the SDK's APIClient._url quotes it."""
    return quote(segment, safe="/:")


def _api_error(status: int, data: bytes, request: str) -> docker.errors.APIError:
    """The SDK's error for an error answer (docker.errors.create_api_error_from_http_exception),
    with the engine's message as the explanation."""
    try:
        explanation = str(json.loads(data)["message"])
    except (ValueError, KeyError, TypeError):
        explanation = data.decode("utf-8", "replace").strip()
    kind = docker.errors.APIError
    if status == 404:
        lowered = explanation.lower()
        image = any(f in lowered for f in docker.errors._image_not_found_explanation_fragments)
        kind = docker.errors.ImageNotFound if image else docker.errors.NotFound
    side = "Client" if status < 500 else "Server"
    return kind(f"{status} {side} Error for {request}", explanation=explanation)


class SdkCalls:
    """EngineCalls through the SDK on the executor's thread pool (`call`), for an engine
    that is not on a Unix socket (tcp, TLS); an attached container's stream is read on
    the pool of long streams (`stream`, by default `call`'s)."""

    def __init__(self, client: docker.DockerClient, call: Call, stream: Call | None = None) -> None:
        self._client = client
        self._api = client.api
        self._call = call
        self._stream = stream or call

    async def image_id(self, name: str) -> str:
        return (await self._call(self._client.images.get, name)).id  # type: ignore[no-any-return]

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        return await self._call(self._api.inspect_container, container_id)  # type: ignore[no-any-return]

    async def rename(self, container_id: str, name: str) -> None:
        await self._call(self._api.rename, container_id, name)

    async def create_container(self, config: dict[str, Any], name: str) -> dict[str, Any]:
        return await self._call(self._api.create_container_from_config, config, name)  # type: ignore[no-any-return]

    async def start(self, container_id: str) -> None:
        await self._call(self._api.start, container_id)

    async def attach(self, container_id: str) -> Attached:
        attaching = asyncio.ensure_future(
            self._stream(
                functools.partial(self._api.attach_socket, params=dict(ATTACH)), container_id
            )
        )
        try:
            sock = await asyncio.shield(attaching)
        except asyncio.CancelledError:
            # The thread attaches all the same: its socket is closed once it is there.
            attaching.add_done_callback(_hang_up_attached)
            raise
        return _SdkAttached(sock, self._stream)

    async def wait(self, container_id: str) -> dict[str, Any]:
        return await self._call(self._api.wait, container_id)  # type: ignore[no-any-return]

    async def remove(self, container_id: str, *, force: bool, v: bool) -> None:
        await self._call(self._api.remove_container, container_id, force=force, v=v)

    async def close(self) -> None:
        pass


class _SdkAttached:
    """The SDK's attach socket: each blocking send and read on the streams pool."""

    def __init__(self, sock: Any, stream: Call) -> None:
        self._sock = sock
        self._raw = getattr(sock, "_sock", sock)  # the socket under the SDK's file object
        self._frames: Iterator[tuple[int, bytes]] = frames_iter(sock, tty=False)
        self._run = stream
        self._busy: asyncio.Future[Any] | None = None  # the call on a thread, if any
        self._closed = False

    async def send(self, data: bytes) -> None:
        await self._blocking(self._raw.sendall, data)  # all at once

    async def read(self) -> tuple[int, bytes] | None:
        return await self._blocking(next, self._frames, None)  # type: ignore[no-any-return]

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        # Shielded: a cancelled caller leaves the thread to finish, and close() lets the
        # descriptor go only then, since by the time the thread used a closed one it could
        # be another connection's.
        self._busy = asyncio.ensure_future(self._run(fn, *args))
        return await asyncio.shield(self._busy)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # A thread blocked on the socket returns, and any call after finds it ended.
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)
        if self._busy is None or self._busy.done():
            self._release()
        else:
            self._busy.add_done_callback(self._release)

    def _release(self, busy: asyncio.Future[Any] | None = None) -> None:
        if busy is not None and not busy.cancelled():
            busy.exception()  # seen: the caller who would have was cancelled
        self._sock.close()
        self._raw.close()


def _hang_up_attached(attaching: asyncio.Future[Any]) -> None:
    if not attaching.cancelled() and attaching.exception() is None:
        hang_up(attaching.result())


def hang_up(attached: Any) -> None:
    """Closes an SDK attach socket nobody is using for good: its file object keeps the
    socket open."""
    raw = getattr(attached, "_sock", attached)
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_RDWR)
    attached.close()
    raw.close()


def run_calls(
    client: docker.DockerClient, call: Call, max_pool_size: int, stream: Call | None = None
) -> EngineCalls:
    """AsyncCalls when the client's engine is on a Unix socket (to be made on the running
    loop), else SdkCalls on the thread pools `call` and `stream` run functions on."""
    adapter = client.api.adapters.get(MOUNT)
    if not isinstance(adapter, UnixHTTPAdapter):
        return SdkCalls(client, call, stream)
    return AsyncCalls(adapter.socket_path, client.api._version, client.api.timeout, max_pool_size)


def engine_client(max_pool_size: int) -> docker.DockerClient:
    """docker.from_env(), with one reused pool of `max_pool_size` connections when the
    engine is on a Unix socket."""
    client = docker.from_env(max_pool_size=max_pool_size)
    api = client.api
    adapter = api.adapters.get(MOUNT)
    if isinstance(adapter, UnixHTTPAdapter):
        api.mount(
            MOUNT,
            _OnePoolAdapter(
                f"http+unix://{adapter.socket_path}",
                timeout=adapter.timeout,
                max_pool_size=adapter.max_pool_size,
            ),
        )
        adapter.close()
        api.trust_env = False
    return client
