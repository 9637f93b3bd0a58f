"""Plugins: HTTP services known by name. Resource providers, artifact stores, loggers and
notifiers are registries of the same shape; a Registry names one of them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bob_common.plugin_policy import url_problem
from bob_common.plugin_urls import without_credentials
from entities_svc import journal, notifications
from entities_svc.errors import Invalid, NotFound
from entities_svc.models import ArtifactStore, Logger, Notifier, ResourceProvider, database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plugin:
    name: str
    # Base URL, e.g. "http://127.0.0.1:8001".
    url: str


@dataclass(frozen=True)
class Registry:
    model: type[ResourceProvider] | type[ArtifactStore] | type[Logger] | type[Notifier]
    # "Resource provider": how messages name one.
    label: str
    # "ResourceProvider": the kind of its events in the journal (Bob's).
    kind: str
    # Called with the name in the transaction that deletes one.
    on_delete: Callable[[str], None] | None = None


PROVIDERS = Registry(ResourceProvider, "Resource provider", "ResourceProvider")
STORES = Registry(ArtifactStore, "Artifact store", "ArtifactStore")
LOGGERS = Registry(Logger, "Logger", "Logger")
# Issue 11: told of every run's end (notifications.py); what one was owed goes with it.
NOTIFIERS = Registry(Notifier, "Notifier", "Notifier", notifications.forget_notifier)


def _check(plugin: Plugin) -> None:
    if not plugin.name:
        raise Invalid("Plugin name must not be empty")
    # The URL is not repeated: what is wrong with it may be a password in it.
    if why := url_problem(plugin.url):
        raise Invalid(f"Plugin url {why}")


def put(registry: Registry, plugin: Plugin) -> None:
    """Registers the plugin, or re-points it to a new URL."""
    _check(plugin)
    model = registry.model
    with database.atomic():
        model.insert(name=plugin.name, url=plugin.url).on_conflict(
            conflict_target=[model.name], update={model.url: plugin.url}
        ).execute()
        # The URL stays out of the journal: it may carry credentials.
        message = f"{registry.label} {plugin.name} registered"
        journal.append(registry.kind, f"{registry.kind}Registered", message)
    shown = without_credentials(plugin.url)
    log.info("registered %s %s at %s", registry.label.lower(), plugin.name, shown)


def delete(registry: Registry, name: str) -> None:
    model = registry.model
    with database.atomic():
        if not model.delete().where(model.name == name).execute():
            raise NotFound(f"{registry.label} {name} not found")
        if registry.on_delete is not None:
            registry.on_delete(name)
        journal.append(registry.kind, f"{registry.kind}Deleted", f"{registry.label} {name} deleted")
    log.info("deleted %s %s", registry.label.lower(), name)


def list_all(registry: Registry) -> list[Plugin]:
    model = registry.model
    return [Plugin(row.name, row.url) for row in model.select().order_by(model.name)]


def registered(registry: Registry, names: Iterable[str]) -> set[str]:
    """Those of `names` that are registered."""
    model = registry.model
    wanted = set(names)
    if not wanted:
        return set()
    return {name for (name,) in model.select(model.name).where(model.name.in_(wanted)).tuples()}
