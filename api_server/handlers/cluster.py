"""Cluster health and the runners it has seen."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
from google.protobuf import empty_pb2

from api_server import backends, convert
from api_server.problems import ApiError, unavailable
from bob_common.pipeline_rules import EXTERNAL
from bob_common.plugin_urls import ping_url
from bob_pb import entities_pb2, pipeline_pb2

log = logging.getLogger(__name__)

HEALTHY = "Yes we can! 🔨 🔨"
# A runner not heard from for this long is gone or cut off: its last word on its engine is
# no news of the cluster's health.
DEGRADED_SEEN_S = 60


async def _plugin_healthy(b: backends.Backends, label: str, url: str) -> bool:
    try:
        response = await b.http.get(ping_url(url))
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # Logged, not answered: the detail would tell a caller what answers where.
        log.warning("%s: GET /ping failed: %s", label, exc)
        return False
    if response.status_code != 200:
        log.warning("%s: GET /ping answered %d", label, response.status_code)
    return response.status_code == 200


async def _all_pipelines(b: backends.Backends) -> list[pipeline_pb2.Pipeline]:
    """Every pipeline's definition, page by page (a listed pipeline comes as its
    document when it has one, to keep each page under gRPC's message limit)."""
    found: list[pipeline_pb2.Pipeline] = []
    request = entities_pb2.ListPipelinesRequest()
    while True:
        reply = await b.call(b.entities.ListPipelines(request))
        for stored in reply.pipelines:
            if stored.document:
                found.append(convert.pipeline_from_json(json.loads(stored.document)))
            else:
                found.append(stored.pipeline)
        if not (reply.more and reply.pipelines):
            return found
        last = reply.pipelines[-1]
        request = entities_pb2.ListPipelinesRequest(after_group=last.group, after_name=last.name)


def _in_use(pipelines: list[pipeline_pb2.Pipeline]) -> set[str]:
    """The labels of the plugins some pipeline names: its external resources' providers,
    and the stores of its internal resources and of its artifacts. A logger is chosen
    when a run starts, so no pipeline makes one in use."""
    used: set[str] = set()
    for pipeline in pipelines:
        for resource in pipeline.resources:
            kind = "resource provider" if resource.type == EXTERNAL else "artifact store"
            used.add(f"{kind} {resource.provider}")
        for step in pipeline.steps:
            if step.HasField("produces_artifact") and step.produces_artifact.store:
                used.add(f"artifact store {step.produces_artifact.store}")
    return used


async def _dead_plugins(b: backends.Backends) -> tuple[list[str], list[str]]:
    """Providers, stores and loggers whose GET /ping fails, pinged concurrently: (those a
    pipeline uses, the others). Builds need the first; the others are news only."""
    empty = empty_pb2.Empty()
    providers, stores, loggers = await asyncio.gather(
        b.call(b.entities.ListResourceProviders(empty)),
        b.call(b.entities.ListArtifactStores(empty)),
        b.call(b.entities.ListLoggers(empty)),
    )
    plugins = [(f"resource provider {p.name}", p.url) for p in providers.plugins]
    plugins += [(f"artifact store {p.name}", p.url) for p in stores.plugins]
    plugins += [(f"logger {p.name}", p.url) for p in loggers.plugins]
    results = await asyncio.gather(*(_plugin_healthy(b, *plugin) for plugin in plugins))
    dead = [label for (label, _), healthy in zip(plugins, results, strict=True) if not healthy]
    if not dead:
        return [], []  # the usual probe: no need to read every pipeline
    used = _in_use(await _all_pipelines(b))
    return [d for d in dead if d in used], [d for d in dead if d not in used]


async def health_check():
    b = backends.current()
    unhealthy = []
    unused_dead: list[str] = []
    if not b.publisher.connected:
        unhealthy.append("queue")
    if not await b.entities_healthy():
        unhealthy.append("entities")
    else:
        try:
            used_dead, unused_dead = await _dead_plugins(b)
            unhealthy += used_dead
        except ApiError:
            unhealthy.append("entities")
    if unhealthy:
        raise unavailable(f"Health check failed: {', '.join(unhealthy)} not healthy")
    answer: dict[str, object] = {"message": HEALTHY}
    degraded = [f"{label}: not answering (no pipeline uses it)" for label in unused_dead]
    try:
        degraded += await _degraded_runners(b)
    except ApiError:
        pass  # entities answered a moment ago; the runners' state is a detail of the answer
    if degraded:
        answer["degraded"] = degraded
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
