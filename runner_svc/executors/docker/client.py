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

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import docker
import docker.errors
import requests
from docker.transport.unixconn import UnixHTTPAdapter

MOUNT = "http+docker://"

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


class EngineCalls(Protocol):
    """The Engine API calls every run makes: look up its image, and inspect, rename,
    create, start, wait for and remove its container. They raise what the SDK's calls
    raise: docker.errors.NotFound (ImageNotFound for an image) or APIError, with the
    engine's message as the explanation, for an error answer; a requests.ConnectionError
    (which unreachable() recognises) when the engine cannot be reached; requests' Timeout
    when it does not answer within the client's timeout (wait() has none)."""

    async def image_id(self, name: str) -> str: ...

    async def inspect_container(self, container_id: str) -> dict[str, Any]: ...

    async def rename(self, container_id: str, name: str) -> None: ...

    async def create_container(self, config: dict[str, Any], name: str) -> dict[str, Any]: ...

    async def start(self, container_id: str) -> None: ...

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
    that is not on a Unix socket (tcp, TLS)."""

    def __init__(self, client: docker.DockerClient, call: Call) -> None:
        self._client = client
        self._api = client.api
        self._call = call

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

    async def wait(self, container_id: str) -> dict[str, Any]:
        return await self._call(self._api.wait, container_id)  # type: ignore[no-any-return]

    async def remove(self, container_id: str, *, force: bool, v: bool) -> None:
        await self._call(self._api.remove_container, container_id, force=force, v=v)

    async def close(self) -> None:
        pass


def run_calls(client: docker.DockerClient, call: Call, max_pool_size: int) -> EngineCalls:
    """AsyncCalls when the client's engine is on a Unix socket (to be made on the running
    loop), else SdkCalls on the thread pool `call` runs functions on."""
    adapter = client.api.adapters.get(MOUNT)
    if not isinstance(adapter, UnixHTTPAdapter):
        return SdkCalls(client, call)
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
