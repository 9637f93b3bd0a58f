"""Resource providers, artifact stores and loggers: HTTP services registered by name and
URL, the name in the body (Bob's current API) or in the path (its older one)."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import empty_pb2

from api_server import backends
from bob_pb import entities_pb2

OK = {"message": "Ok"}


@dataclass(frozen=True)
class Kind:
    """The three rpcs of one kind of plugin."""

    put: str
    delete: str
    list: str


PROVIDERS = Kind("PutResourceProvider", "DeleteResourceProvider", "ListResourceProviders")
STORES = Kind("PutArtifactStore", "DeleteArtifactStore", "ListArtifactStores")
LOGGERS = Kind("PutLogger", "DeleteLogger", "ListLoggers")


async def _put(kind: Kind, name: str, url: str) -> tuple[dict, int]:
    await backends.current().rpc(kind.put, entities_pb2.Plugin(name=name, url=url))
    return OK, 202


async def _delete(kind: Kind, name: str) -> tuple[dict, int]:
    await backends.current().rpc(kind.delete, entities_pb2.PluginRef(name=name))
    return OK, 202


async def _list(kind: Kind, name: str | None) -> tuple[dict, int]:
    """Only string values in each item: the Terraform provider decodes the list as
    map[string]string."""
    reply = await backends.current().rpc(kind.list, empty_pb2.Empty())
    found = [p for p in reply.plugins if name is None or p.name == name]
    return {"message": [{"name": p.name, "url": p.url} for p in found]}, 200


async def resource_provider_create(body: dict):
    return await _put(PROVIDERS, body["name"], body["url"])


async def resource_provider_create_at(name: str, body: dict):
    return await _put(PROVIDERS, name, body["url"])


async def resource_provider_delete(name: str):
    return await _delete(PROVIDERS, name)


async def resource_provider_list(name: str | None = None):
    return await _list(PROVIDERS, name)


async def artifact_store_create(body: dict):
    return await _put(STORES, body["name"], body["url"])


async def artifact_store_create_at(name: str, body: dict):
    return await _put(STORES, name, body["url"])


async def artifact_store_delete(name: str):
    return await _delete(STORES, name)


async def artifact_store_list(name: str | None = None):
    return await _list(STORES, name)


async def logger_create(body: dict):
    return await _put(LOGGERS, body["name"], body["url"])


async def logger_delete(name: str):
    return await _delete(LOGGERS, name)


async def logger_list(name: str | None = None):
    return await _list(LOGGERS, name)
