"""Where a run's resources come from and its artifacts go: plugin URLs are looked up in
entities when the run needs them (a job does not carry them, so a plugin re-pointed
meanwhile is found at its new address), and Bob's HTTP contracts give the rest
(bob_common.plugin_urls).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf import empty_pb2

from bob_common import rpc
from bob_common.pipeline_rules import EXTERNAL
from bob_common.plugin_urls import artifact_url, resource_url
from bob_pb import entities_pb2, entities_pb2_grpc
from runner_svc.errors import TransferFailed
from runner_svc.spec import ResourceSpec


@dataclass(frozen=True)
class Source:
    """A GET that answers a resource's tar."""

    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    # For the run's log, e.g. "provider git".
    described: str = ""
    # For a failure's reason, e.g. "resource provider 'git'".
    plugin: str = "the plugin"


class PluginDirectory:
    def __init__(self, channel: grpc.aio.Channel, *, timeout_s: float) -> None:
        # Deadlines and run ids as bob_common.rpc gives them (with_defaults).
        self._stub = rpc.with_defaults(entities_pb2_grpc.EntitiesStub(channel), timeout_s)

    async def _url(
        self,
        kind: str,
        rpc: Callable[..., Awaitable[entities_pb2.ListPluginsResponse]],
        name: str,
    ) -> str:
        try:
            reply = await rpc(empty_pb2.Empty())
        except grpc.aio.AioRpcError as exc:
            raise TransferFailed(
                f"could not look up {kind} {name!r}: {exc.code().name} {exc.details()}"
            ) from exc
        for plugin in reply.plugins:
            if plugin.name == name:
                return plugin.url
        raise TransferFailed(f"{kind} {name!r} is not registered")

    async def resource_provider(self, name: str) -> str:
        return await self._url("resource provider", self._stub.ListResourceProviders, name)

    async def artifact_store(self, name: str) -> str:
        return await self._url("artifact store", self._stub.ListArtifactStores, name)

    async def logger(self, name: str) -> str:
        return await self._url("logger", self._stub.ListLoggers, name)

    async def source(self, resource: ResourceSpec) -> Source:
        """Where to GET the resource's tar from. TransferFailed for an unknown plugin."""
        if resource.type == EXTERNAL:
            url = await self.resource_provider(resource.provider)
            # Sorted: the same resource is always the same URL (a protobuf map has no order).
            return Source(
                resource_url(url),
                dict(sorted(resource.params.items())),
                f"provider {resource.provider}",
                f"resource provider {resource.provider!r}",
            )
        params = resource.params
        artifact = params.get("artifact") or resource.name
        url = await self.artifact_store(resource.provider)
        return Source(
            artifact_url(url, params["group"], params["name"], params["run_id"], artifact),
            described=f"artifact {artifact} of run {params['run_id']} in store {resource.provider}",
            plugin=f"artifact store {resource.provider!r}",
        )
