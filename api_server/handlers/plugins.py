"""Resource providers and artifact stores: HTTP services registered by name and URL."""

from __future__ import annotations

from google.protobuf import empty_pb2

from api_server import backends
from bob_pb import entities_pb2

OK = {"message": "Ok"}


async def _put(rpc: str, name: str, body: dict) -> tuple[dict, int]:
    await backends.current().rpc(rpc, entities_pb2.Plugin(name=name, url=body["url"]))
    return OK, 202


async def _delete(rpc: str, name: str) -> tuple[dict, int]:
    await backends.current().rpc(rpc, entities_pb2.PluginRef(name=name))
    return OK, 202


async def _list(rpc: str) -> tuple[dict, int]:
    reply = await backends.current().rpc(rpc, empty_pb2.Empty())
    return {"message": [{"name": p.name, "url": p.url} for p in reply.plugins]}, 200


async def resource_provider_create(name: str, body: dict):
    return await _put("PutResourceProvider", name, body)


async def resource_provider_delete(name: str):
    return await _delete("DeleteResourceProvider", name)


async def resource_provider_list():
    return await _list("ListResourceProviders")


async def artifact_store_create(name: str, body: dict):
    return await _put("PutArtifactStore", name, body)


async def artifact_store_delete(name: str):
    return await _delete("DeleteArtifactStore", name)


async def artifact_store_list():
    return await _list("ListArtifactStores")
