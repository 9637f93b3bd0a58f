"""Artifacts, streamed from the artifact store that holds them."""

from __future__ import annotations

import logging

import httpx
from google.protobuf import empty_pb2
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from api_server import backends
from api_server.handlers.runs import run_of
from api_server.problems import ApiError, unavailable
from bob_common.plugin_urls import artifact_url, without_credentials

log = logging.getLogger(__name__)


async def pipeline_artifact_fetch(
    group: str, name: str, id_: str, store_name: str, artifact_name: str
):
    b = backends.current()
    await run_of(group, name, id_)
    stores = await b.call(b.entities.ListArtifactStores(empty_pb2.Empty()))
    store = next((s for s in stores.plugins if s.name == store_name), None)
    if store is None:
        raise ApiError(404, f"Artifact store {store_name} is not registered")
    url = artifact_url(store.url, group, name, id_, artifact_name)
    shown = without_credentials(url)
    try:
        response = await b.http.send(b.http.build_request("GET", url), stream=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # What went wrong stays in the log: echoed, it would map the network for a caller.
        log.warning("artifact store %s: GET %s failed: %s", store_name, shown, exc)
        raise unavailable(f"Artifact store '{store_name}' is unreachable") from exc
    if response.status_code != 200:
        await response.aclose()
        if response.status_code == 404:
            raise ApiError(
                404, f"Artifact {artifact_name} of run {id_} not found in store {store_name}"
            )
        log.warning("artifact store %s answered %d for %s", store_name, response.status_code, shown)
        raise ApiError(502, f"Artifact store '{store_name}' answered {response.status_code}")
    # Streamed chunk by chunk: an artifact is never held whole in memory.
    return StreamingResponse(
        response.aiter_raw(),
        media_type="application/tar",
        background=BackgroundTask(response.aclose),
    )
