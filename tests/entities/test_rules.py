"""The rules a pipeline definition must follow beyond its shape."""

from __future__ import annotations

import pytest

from bob_common.run_states import RunStatus
from entities_svc import journal, pipelines, plugins, run_queries, run_start
from entities_svc.errors import FailedPrecondition, Invalid
from tests.entities.support import PIPELINE


def _with(**changes):
    return {**PIPELINE, **changes}


GIT = plugins.Plugin("git", "http://127.0.0.1:8001")
LOCAL = plugins.Plugin("local", "http://127.0.0.1:8002")


@pytest.fixture
def registered(database):
    plugins.put(plugins.PROVIDERS, GIT)
    plugins.put(plugins.STORES, LOCAL)


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


NEEDY = _with(
    resources=[SRC, {"name": "bin", "type": "internal", "provider": "cache"}],
    steps=[
        {"cmd": "make", "needs_resource": "src"},
        {"cmd": "ls", "produces_artifact": {"name": "out", "path": "o", "store": "local"}},
    ],
)


def test_a_pipeline_may_name_plugins_that_are_not_registered_yet(database):
    assert pipelines.put_pipeline("dev", "rules", NEEDY) is True


def test_a_start_names_each_missing_plugin_and_records_nothing(database):
    pipelines.put_pipeline("dev", "rules", NEEDY)
    plugins.put(plugins.PROVIDERS, GIT)

    with pytest.raises(FailedPrecondition) as refused:
        run_start.create_run("dev", "rules", logger="elk")

    assert str(refused.value).split("; ") == [
        "Artifact store 'cache' of resource 'bin' is not registered",
        "Artifact store 'local' of artifact 'out' is not registered",
        "Logger 'elk' is not registered",
    ]
    assert run_queries.list_runs("dev", "rules") == []
    assert [e.reason for e in journal.read_after(0, 10)][-1] == "ResourceProviderRegistered"


def test_a_start_succeeds_once_its_plugins_are_registered(database):
    pipelines.put_pipeline("dev", "rules", NEEDY)
    for registry, plugin in [
        (plugins.PROVIDERS, GIT),
        (plugins.STORES, LOCAL),
        (plugins.STORES, plugins.Plugin("cache", "http://127.0.0.1:8003")),
        (plugins.LOGGERS, plugins.Plugin("elk", "http://127.0.0.1:8004")),
    ]:
        plugins.put(registry, plugin)

    run = run_start.create_run("dev", "rules", logger="elk")

    assert run_queries.get_run(run.id).logger == "elk"


def test_a_missing_provider_is_named_with_its_resource(database):
    pipelines.put_pipeline("dev", "rules", _with(resources=[SRC]))

    missing = r"^Resource provider 'git' of resource 'src' is not registered$"
    with pytest.raises(FailedPrecondition, match=missing):
        run_start.create_run("dev", "rules")


def test_an_empty_needs_resource_means_none(database):
    steps = [{"cmd": "make", "needs_resource": ""}]

    assert pipelines.put_pipeline("dev", "rules", _with(steps=steps)) is True
    assert run_start.create_run("dev", "rules").status is RunStatus.PENDING


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
