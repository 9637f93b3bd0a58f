from __future__ import annotations

import pytest

from entities_svc import journal, plugins
from entities_svc.errors import Invalid, NotFound
from entities_svc.plugins import LOGGERS, PROVIDERS, STORES, Plugin

REGISTRIES = [PROVIDERS, STORES, LOGGERS]


def test_put_registers_and_re_points_a_resource_provider(database):
    plugins.put(PROVIDERS, Plugin("git", "http://127.0.0.1:8000"))
    plugins.put(PROVIDERS, Plugin("git", "http://127.0.0.1:8001"))
    plugins.put(PROVIDERS, Plugin("blob", "https://blob.example"))

    assert plugins.list_all(PROVIDERS) == [
        Plugin("blob", "https://blob.example"),
        Plugin("git", "http://127.0.0.1:8001"),
    ]
    assert plugins.list_all(STORES) == []


def test_delete_removes_only_the_named_artifact_store(database):
    plugins.put(STORES, Plugin("s3", "http://127.0.0.1:8002"))
    plugins.put(STORES, Plugin("local", "http://127.0.0.1:8003"))

    plugins.delete(STORES, "s3")

    assert plugins.list_all(STORES) == [Plugin("local", "http://127.0.0.1:8003")]


def test_loggers_are_a_registry_of_their_own(database):
    plugins.put(LOGGERS, Plugin("elk", "http://127.0.0.1:8004"))
    plugins.put(PROVIDERS, Plugin("elk", "http://127.0.0.1:8001"))

    plugins.delete(PROVIDERS, "elk")

    assert plugins.list_all(LOGGERS) == [Plugin("elk", "http://127.0.0.1:8004")]
    assert plugins.registered(LOGGERS, ["elk", "nope"]) == {"elk"}
    assert plugins.registered(LOGGERS, []) == set()


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_delete_of_an_unknown_name_is_not_found(database, registry):
    with pytest.raises(NotFound, match=f"^{registry.label} nope not found$"):
        plugins.delete(registry, "nope")


@pytest.mark.parametrize("plugin", [Plugin("", "http://x"), Plugin("p", "x:1"), Plugin("p", "")])
def test_put_without_a_name_or_an_http_url_is_invalid(database, plugin):
    with pytest.raises(Invalid):
        plugins.put(STORES, plugin)


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_registering_and_deleting_are_journaled_without_the_url(database, registry):
    plugins.put(registry, Plugin("x", "http://127.0.0.1:9"))
    plugins.delete(registry, "x")

    events = journal.read_after(0, 10)

    assert [(e.kind, e.reason, e.type) for e in events] == [
        (registry.kind, f"{registry.kind}Registered", "Normal"),
        (registry.kind, f"{registry.kind}Deleted", "Normal"),
    ]
    assert [e.message for e in events] == [
        f"{registry.label} x registered",
        f"{registry.label} x deleted",
    ]
