"""Resource providers, artifact stores and loggers: HTTP services registered by name and
URL, the name in the body (Bob's current API) or in the path (its older one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf import empty_pb2

from api_server import backends, paging
from bob_common.plugin_urls import without_credentials
from bob_pb import entities_pb2, entities_pb2_grpc

OK = {"message": "Ok"}

Stub = entities_pb2_grpc.EntitiesStub


@dataclass(frozen=True)
class Kind:
    """The three rpcs of one kind of plugin."""

    put: Callable[[Stub, entities_pb2.Plugin], Awaitable[empty_pb2.Empty]]
    delete: Callable[[Stub, entities_pb2.PluginRef], Awaitable[empty_pb2.Empty]]
    list: Callable[[Stub, empty_pb2.Empty], Awaitable[entities_pb2.ListPluginsResponse]]


PROVIDERS = Kind(
    lambda e, plugin: e.PutResourceProvider(plugin),
    lambda e, ref: e.DeleteResourceProvider(ref),
    lambda e, empty: e.ListResourceProviders(empty),
)
STORES = Kind(
    lambda e, plugin: e.PutArtifactStore(plugin),
    lambda e, ref: e.DeleteArtifactStore(ref),
    lambda e, empty: e.ListArtifactStores(empty),
)
LOGGERS = Kind(
    lambda e, plugin: e.PutLogger(plugin),
    lambda e, ref: e.DeleteLogger(ref),
    lambda e, empty: e.ListLoggers(empty),
)
# Issue 11: told of every run's end by entities.
NOTIFIERS = Kind(
    lambda e, plugin: e.PutNotifier(plugin),
    lambda e, ref: e.DeleteNotifier(ref),
    lambda e, empty: e.ListNotifiers(empty),
)


async def _put(kind: Kind, name: str, url: str) -> tuple[dict, int]:
    b = backends.current()
    await b.call(kind.put(b.entities, entities_pb2.Plugin(name=name, url=url)))
    return OK, 202


async def _delete(kind: Kind, name: str) -> tuple[dict, int]:
    b = backends.current()
    await b.call(kind.delete(b.entities, entities_pb2.PluginRef(name=name)))
    return OK, 202


async def _list(kind: Kind, name: str | None, limit: int | None, cursor: str | None):
    """Only string values in each item: the Terraform provider decodes the list as
    map[string]string. URLs are shown without their credentials (the stored URL keeps
    them, for the runners)."""
    b = backends.current()
    reply = await b.call(kind.list(b.entities, empty_pb2.Empty()))
    found = [p for p in reply.plugins if name is None or p.name == name]
    page, headers = paging.slice_page(found, lambda p: [p.name], limit, cursor)
    shown = [{"name": p.name, "url": without_credentials(p.url)} for p in page]
    return {"message": shown}, 200, headers


async def resource_provider_create(body: dict):
    return await _put(PROVIDERS, body["name"], body["url"])


async def resource_provider_create_at(name: str, body: dict):
    return await _put(PROVIDERS, name, body["url"])


async def resource_provider_delete(name: str):
    return await _delete(PROVIDERS, name)


async def resource_provider_list(
    name: str | None = None, limit: int | None = None, cursor: str | None = None
):
    return await _list(PROVIDERS, name, limit, cursor)


async def artifact_store_create(body: dict):
    return await _put(STORES, body["name"], body["url"])


async def artifact_store_create_at(name: str, body: dict):
    return await _put(STORES, name, body["url"])


async def artifact_store_delete(name: str):
    return await _delete(STORES, name)


async def artifact_store_list(
    name: str | None = None, limit: int | None = None, cursor: str | None = None
):
    return await _list(STORES, name, limit, cursor)


async def logger_create(body: dict):
    return await _put(LOGGERS, body["name"], body["url"])


async def logger_delete(name: str):
    return await _delete(LOGGERS, name)


async def logger_list(name: str | None = None, limit: int | None = None, cursor: str | None = None):
    return await _list(LOGGERS, name, limit, cursor)


async def notifier_create(body: dict):
    return await _put(NOTIFIERS, body["name"], body["url"])


async def notifier_delete(name: str):
    return await _delete(NOTIFIERS, name)


async def notifier_list(
    name: str | None = None, limit: int | None = None, cursor: str | None = None
):
    return await _list(NOTIFIERS, name, limit, cursor)
