"""The rules a pipeline definition must follow beyond its shape."""

from __future__ import annotations

import pytest

from entities_svc import pipelines, plugins
from entities_svc.errors import FailedPrecondition, Invalid
from tests.entities.support import PIPELINE


def _with(**changes):
    return {**PIPELINE, **changes}


@pytest.fixture
def registered(database):
    plugins.put_resource_provider(plugins.Plugin("git", "http://127.0.0.1:8001"))
    plugins.put_artifact_store(plugins.Plugin("local", "http://127.0.0.1:8002"))


SRC = {"name": "src", "type": "external", "provider": "git"}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (_with(steps=[]), "at least one step"),
        (_with(image=""), "needs an image"),
        (_with(resources=[SRC, SRC]), "Resource 'src' is declared more than once"),
        (
            _with(steps=[{"cmd": "make", "needs_resource": "src"}]),
            "Step 1 needs resource 'src', which is not declared",
        ),
        (
            _with(
                steps=[
                    {
                        "cmd": "a",
                        "produces_artifact": {"name": "bin", "path": "a", "store": "local"},
                    },
                    {
                        "cmd": "b",
                        "produces_artifact": {"name": "bin", "path": "b", "store": "local"},
                    },
                ]
            ),
            "Artifact 'bin' is produced by more than one step",
        ),
        (_with(resources=[{**SRC, "type": "magic"}]), "type 'magic'"),
    ],
)
def test_a_self_contradicting_definition_is_invalid_and_nothing_is_stored(
    registered, definition, message
):
    with pytest.raises(Invalid, match=message):
        pipelines.put_pipeline("dev", "rules", definition)
    assert pipelines.list_pipelines(name="rules") == []


def test_an_unregistered_resource_provider_is_refused(database):
    definition = _with(resources=[SRC], steps=[{"cmd": "ls", "needs_resource": "src"}])

    with pytest.raises(FailedPrecondition, match="Resource provider 'git' of resource 'src'"):
        pipelines.put_pipeline("dev", "rules", definition)


def test_an_internal_resource_needs_a_registered_artifact_store(database):
    internal = {"name": "bin", "type": "internal", "provider": "local"}

    with pytest.raises(FailedPrecondition, match="Artifact store 'local' of resource 'bin'"):
        pipelines.put_pipeline("dev", "rules", _with(resources=[internal]))


def test_an_unregistered_artifact_store_is_refused(database):
    step = {"cmd": "make", "produces_artifact": {"name": "bin", "path": "out", "store": "s3"}}

    with pytest.raises(FailedPrecondition, match="Artifact store 's3' of artifact 'bin'"):
        pipelines.put_pipeline("dev", "rules", _with(steps=[step]))


def test_a_refused_replacement_keeps_the_stored_definition(registered):
    pipelines.put_pipeline("dev", "rules", PIPELINE)

    with pytest.raises(Invalid):
        pipelines.put_pipeline("dev", "rules", _with(steps=[]))

    assert pipelines.get_pipeline("dev", "rules").definition == PIPELINE


def test_a_definition_using_registered_plugins_is_stored(registered):
    definition = _with(
        resources=[SRC],
        steps=[
            {"cmd": "make", "needs_resource": "src"},
            {"cmd": "ls", "produces_artifact": {"name": "bin", "path": "out", "store": "local"}},
        ],
    )

    assert pipelines.put_pipeline("dev", "rules", definition) is True
