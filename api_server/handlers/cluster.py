"""Cluster health and the runners it has seen."""

from __future__ import annotations

import asyncio

import httpx
from google.protobuf import empty_pb2

from api_server import backends, convert
from api_server.problems import ApiError, unavailable
from bob_common.plugin_urls import ping_url

HEALTHY = "Yes we can! 🔨 🔨"


async def _plugin_healthy(b: backends.Backends, url: str) -> bool:
    try:
        response = await b.http.get(ping_url(url))
    except (httpx.HTTPError, httpx.InvalidURL):
        return False
    return response.status_code == 200


async def _unhealthy_plugins(b: backends.Backends) -> list[str]:
    """Providers, stores and loggers whose GET /ping fails, pinged concurrently."""
    empty = empty_pb2.Empty()
    providers, stores, loggers = await asyncio.gather(
        b.call(b.entities.ListResourceProviders(empty)),
        b.call(b.entities.ListArtifactStores(empty)),
        b.call(b.entities.ListLoggers(empty)),
    )
    plugins = [(f"resource provider {p.name}", p.url) for p in providers.plugins]
    plugins += [(f"artifact store {p.name}", p.url) for p in stores.plugins]
    plugins += [(f"logger {p.name}", p.url) for p in loggers.plugins]
    results = await asyncio.gather(*(_plugin_healthy(b, url) for _, url in plugins))
    return [label for (label, _), healthy in zip(plugins, results, strict=True) if not healthy]


async def health_check():
    b = backends.current()
    unhealthy = []
    if not b.publisher.connected:
        unhealthy.append("queue")
    if not await b.entities_healthy():
        unhealthy.append("entities")
    else:
        try:
            unhealthy += await _unhealthy_plugins(b)
        except ApiError:
            unhealthy.append("entities")
    if unhealthy:
        raise unavailable(f"Health check failed: {', '.join(unhealthy)} not healthy")
    return {"message": HEALTHY}, 200


async def cluster_info():
    """Bob's per-node shape, keyed by runner id (several runners may share a host)."""
    b = backends.current()
    reply = await b.call(b.entities.ListRunners(empty_pb2.Empty()))
    return {"message": {r.runner_id: convert.node(r) for r in reply.runners}}, 200
