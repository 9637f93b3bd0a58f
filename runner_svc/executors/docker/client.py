"""The docker SDK client of a runner, made for many short calls to a local engine.

The SDK keeps one connection pool per request URL on a Unix socket, and every container
has URLs of its own: each call on a new container opened a connection, and pools beyond
the 25 most recent were closed. Here one pool serves the engine, so connections are
reused, and the socket's requests skip the proxy and netrc lookups of the environment,
which do not apply to a Unix socket anyway.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
import requests
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
