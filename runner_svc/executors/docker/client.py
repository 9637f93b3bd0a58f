"""The docker SDK client of a runner, made for many short calls to a local engine.

The SDK keeps one connection pool per request URL on a Unix socket, and every container
has URLs of its own: each call on a new container opened a connection, and pools beyond
the 25 most recent were closed. Here one pool serves the engine, so connections are
reused, and the socket's requests skip the proxy and netrc lookups of the environment,
which do not apply to a Unix socket anyway.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import docker
import docker.errors
import requests
import urllib3
from docker.transport.unixconn import UnixHTTPAdapter

MOUNT = "http+docker://"

# Everything the docker SDK raises when the engine refuses or cannot be reached.
DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)


def unreachable(exc: BaseException) -> bool:
    """Whether the engine could not be reached at all (as opposed to an answer refusing)."""
    return isinstance(exc, requests.ConnectionError | OSError)


def explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


class _OnePoolAdapter(UnixHTTPAdapter):
    def get_connection(self, url: str, proxies: Any = None) -> Any:
        return super().get_connection(MOUNT, proxies)


class DirectCalls:
    """The Engine API calls every run makes (inspect, rename, create, start, wait and
    remove a container), sent straight over the client's one connection pool (urllib3)
    instead of through requests' session, whose request preparation and response
    building cost as much CPU as the rest of the call (~0.6 ms a call through the SDK,
    ~0.3 direct, in the runner; a run makes seven). They raise what the SDK's calls
    raise: docker.errors.NotFound or APIError, with the engine's message as the
    explanation, for an error answer; requests.ConnectionError when the engine cannot be
    reached. Made by direct_calls() only for an engine on a Unix socket."""

    def __init__(self, api: docker.APIClient, pool: Any) -> None:
        self._api = api
        self._pool = pool
        self._timeout = api.timeout

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return self._call("GET", "/containers/{0}/json", container_id)  # type: ignore[no-any-return]

    def rename(self, container_id: str, name: str) -> None:
        self._call("POST", "/containers/{0}/rename", container_id, params={"name": name})

    def create_container(self, config: dict[str, Any], name: str) -> dict[str, Any]:
        # As the SDK sends it: no null at the top level (old engines refuse them).
        body = {key: value for key, value in config.items() if value is not None}
        return self._call(  # type: ignore[no-any-return]
            "POST", "/containers/create", params={"name": name}, body=body
        )

    def start(self, container_id: str) -> None:
        self._call("POST", "/containers/{0}/start", container_id)

    def wait(self, container_id: str) -> dict[str, Any]:
        """Until the container stops: no timeout, as the SDK's wait()."""
        return self._call(  # type: ignore[no-any-return]
            "POST", "/containers/{0}/wait", container_id, timeout=None
        )

    def remove(self, container_id: str, *, force: bool, v: bool) -> None:
        params = {"force": int(force), "v": int(v), "link": 0}
        self._call("DELETE", "/containers/{0}", container_id, params=params)

    def _call(
        self,
        method: str,
        path: str,
        *args: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None | object = ...,
    ) -> Any:
        # The SDK's own URL building (API version prefix, quoted segments), path only.
        url = urlsplit(self._api._url(path, *args)).path
        if params:
            url += "?" + urlencode(params)
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = self._pool.urlopen(
                method,
                url,
                body=json.dumps(body) if body is not None else None,
                headers=headers,
                retries=False,
                redirect=False,
                preload_content=True,
                timeout=urllib3.Timeout(
                    connect=self._timeout, read=self._timeout if timeout is ... else timeout
                ),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise requests.ConnectionError(exc) from exc
        data = response.data
        if response.status >= 400:
            try:
                explanation = json.loads(data)["message"]
            except (ValueError, KeyError, TypeError):
                explanation = data.decode("utf-8", "replace").strip()
            kind = docker.errors.NotFound if response.status == 404 else docker.errors.APIError
            message = f"{response.status} {'Client' if response.status < 500 else 'Server'} Error"
            raise kind(f"{message} for {method} {url}", explanation=explanation)
        return json.loads(data) if data else None


class SdkCalls:
    """The calls of DirectCalls through the SDK, for an engine that is not on a Unix
    socket."""

    def __init__(self, api: docker.APIClient) -> None:
        self._api = api

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return self._api.inspect_container(container_id)  # type: ignore[no-any-return]

    def rename(self, container_id: str, name: str) -> None:
        self._api.rename(container_id, name)

    def create_container(self, config: dict[str, Any], name: str) -> dict[str, Any]:
        return self._api.create_container_from_config(config, name)  # type: ignore[no-any-return]

    def start(self, container_id: str) -> None:
        self._api.start(container_id)

    def wait(self, container_id: str) -> dict[str, Any]:
        return self._api.wait(container_id)  # type: ignore[no-any-return]

    def remove(self, container_id: str, *, force: bool, v: bool) -> None:
        self._api.remove_container(container_id, force=force, v=v)


def run_calls(client: docker.DockerClient) -> DirectCalls | SdkCalls:
    """DirectCalls over the client's one pool, when engine_client made one (an engine on
    a Unix socket); else the SDK's own calls."""
    adapter = client.api.adapters.get(MOUNT)
    if not isinstance(adapter, _OnePoolAdapter):
        return SdkCalls(client.api)
    return DirectCalls(client.api, adapter.get_connection(MOUNT))


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
