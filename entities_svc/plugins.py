"""Resource providers and artifact stores: HTTP services known by name."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlparse

from entities_svc.errors import Invalid, NotFound
from entities_svc.models import ArtifactStore, ResourceProvider

log = logging.getLogger(__name__)

PluginModel = type[ResourceProvider] | type[ArtifactStore]
_LABEL = {ResourceProvider: "Resource provider", ArtifactStore: "Artifact store"}


@dataclass(frozen=True)
class Plugin:
    name: str
    # Base URL, e.g. "http://127.0.0.1:8001".
    url: str


def _check(plugin: Plugin) -> None:
    if not plugin.name:
        raise Invalid("Plugin name must not be empty")
    try:
        parsed = urlparse(plugin.url)
        parsed.port  # noqa: B018 - raises ValueError for a malformed host or port
    except ValueError:
        raise Invalid(f"Plugin url {plugin.url!r} is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise Invalid(f"Plugin url must be an http(s) URL, got {plugin.url!r}")


def _put(model: PluginModel, plugin: Plugin) -> None:
    _check(plugin)
    model.insert(name=plugin.name, url=plugin.url).on_conflict(
        conflict_target=[model.name], update={model.url: plugin.url}
    ).execute()
    log.info("registered %s %s at %s", _LABEL[model].lower(), plugin.name, plugin.url)


def _delete(model: PluginModel, name: str) -> None:
    if not model.delete().where(model.name == name).execute():
        raise NotFound(f"{_LABEL[model]} {name} not found")
    log.info("deleted %s %s", _LABEL[model].lower(), name)


def _list(model: PluginModel) -> list[Plugin]:
    return [Plugin(row.name, row.url) for row in model.select().order_by(model.name)]


def put_resource_provider(plugin: Plugin) -> None:
    _put(ResourceProvider, plugin)


def delete_resource_provider(name: str) -> None:
    _delete(ResourceProvider, name)


def list_resource_providers() -> list[Plugin]:
    return _list(ResourceProvider)


def put_artifact_store(plugin: Plugin) -> None:
    _put(ArtifactStore, plugin)


def delete_artifact_store(name: str) -> None:
    _delete(ArtifactStore, name)


def list_artifact_stores() -> list[Plugin]:
    return _list(ArtifactStore)
