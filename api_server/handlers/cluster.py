"""Cluster health and the runners it has seen."""

from __future__ import annotations

import asyncio
import time

import httpx
from google.protobuf import empty_pb2

from api_server import backends, convert
from api_server.problems import ApiError, unavailable
from bob_common.plugin_urls import ping_url

HEALTHY = "Yes we can! 🔨 🔨"
# A runner not heard from for this long is gone or cut off: its last word on its engine is
# no news of the cluster's health.
DEGRADED_SEEN_S = 60


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
    answer: dict[str, object] = {"message": HEALTHY}
    try:
        if degraded := await _degraded_runners(b):
            answer["degraded"] = degraded
    except ApiError:
        pass  # entities answered a moment ago; the runners' state is a detail of the answer
    return answer, 200


async def _degraded_runners(b: backends.Backends) -> list[str]:
    """Runners heard from lately whose engine is unusable. They take no jobs until it is
    back, so the cluster still builds on the others: reported, not a failed check."""
    reply = await b.call(b.entities.ListRunners(empty_pb2.Empty()))
    recent = time.time() * 1000 - DEGRADED_SEEN_S * 1000
    return [
        f"runner {r.runner_id}: {r.engine_problem}"
        for r in reply.runners
        if r.engine_problem and r.last_seen_ms >= recent
    ]


async def cluster_info():
    """Bob's per-node shape, keyed by runner id (several runners may share a host)."""
    b = backends.current()
    reply = await b.call(b.entities.ListRunners(empty_pb2.Empty()))
    return {"message": {r.runner_id: convert.node(r) for r in reply.runners}}, 200
