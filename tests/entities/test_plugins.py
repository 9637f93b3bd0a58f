from __future__ import annotations

import pytest

from entities_svc import plugins
from entities_svc.errors import Invalid, NotFound
from entities_svc.plugins import Plugin


def test_put_registers_and_re_points_a_resource_provider(database):
    plugins.put_resource_provider(Plugin("git", "http://127.0.0.1:8000"))
    plugins.put_resource_provider(Plugin("git", "http://127.0.0.1:8001"))
    plugins.put_resource_provider(Plugin("blob", "https://blob.example"))

    assert plugins.list_resource_providers() == [
        Plugin("blob", "https://blob.example"),
        Plugin("git", "http://127.0.0.1:8001"),
    ]
    assert plugins.list_artifact_stores() == []


def test_delete_removes_only_the_named_artifact_store(database):
    plugins.put_artifact_store(Plugin("s3", "http://127.0.0.1:8002"))
    plugins.put_artifact_store(Plugin("local", "http://127.0.0.1:8003"))

    plugins.delete_artifact_store("s3")

    assert plugins.list_artifact_stores() == [Plugin("local", "http://127.0.0.1:8003")]


@pytest.mark.parametrize(
    "delete", [plugins.delete_resource_provider, plugins.delete_artifact_store]
)
def test_delete_of_an_unknown_name_is_not_found(database, delete):
    with pytest.raises(NotFound, match="nope not found"):
        delete("nope")


@pytest.mark.parametrize("plugin", [Plugin("", "http://x"), Plugin("p", "x:1"), Plugin("p", "")])
def test_put_without_a_name_or_an_http_url_is_invalid(database, plugin):
    with pytest.raises(Invalid):
        plugins.put_artifact_store(plugin)
