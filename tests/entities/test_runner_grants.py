"""Runner types as an allow-list, in the domain: the default applies until an admin sets a
pipeline's own list; a start on another type is refused and records nothing."""

from __future__ import annotations

import pytest

from bob_common import runner_types
from bob_common.config import ConfigError, EntitiesSettings
from entities_svc import pipelines, run_start, runner_grants, runners
from entities_svc.errors import Invalid
from entities_svc.models import Run
from tests.entities.support import PIPELINE

DEFAULT = (runner_types.DEFAULT,)


def test_shell_is_refused_by_default_and_nothing_is_recorded(pipeline):
    runners.record_heartbeats([runners.Heartbeat("shell-1", "shell", 1, (), 1_000)])

    with pytest.raises(runner_grants.RunnerTypeNotAllowed) as refused:
        run_start.create_run(*pipeline, "shell")

    message = str(refused.value)
    assert "'shell' is not allowed for pipeline" in message
    assert f"PUT /pipelines/groups/{pipeline[0]}/names/{pipeline[1]}/runner-types" in message
    assert Run.select().count() == 0


def test_a_grant_allows_its_types_only_and_dropping_it_restores_the_default(pipeline):
    runners.record_heartbeats([runners.Heartbeat("shell-1", "shell", 1, (), 1_000)])

    granted = runner_grants.put(*pipeline, ["shell", "container", "shell"], DEFAULT)

    assert granted == runner_grants.Allowed(("docker", "shell"), False)
    assert run_start.create_run(*pipeline, "shell").runner_type == "shell"
    runner_grants.put(*pipeline, ["shell"], DEFAULT)
    with pytest.raises(runner_grants.RunnerTypeNotAllowed, match="'docker'"):
        run_start.create_run(*pipeline)
    assert runner_grants.put(*pipeline, None, DEFAULT) == runner_grants.Allowed(DEFAULT, True)
    with pytest.raises(runner_grants.RunnerTypeNotAllowed):
        run_start.create_run(*pipeline, "shell")


def test_a_grant_survives_a_replaced_definition_but_not_a_deleted_pipeline(pipeline):
    runner_grants.put(*pipeline, ["shell"], DEFAULT)

    pipelines.put_pipeline(*pipeline, {**PIPELINE, "image": "changed:1"})
    assert runner_grants.get(*pipeline, DEFAULT).runner_types == ("shell",)

    pipelines.delete_pipeline(*pipeline)
    pipelines.put_pipeline(*pipeline, PIPELINE)
    assert runner_grants.get(*pipeline, DEFAULT) == runner_grants.Allowed(DEFAULT, True)


def test_a_malformed_type_is_refused(pipeline):
    with pytest.raises(Invalid, match="not a valid name"):
        runner_grants.put(*pipeline, ["bad type!"], DEFAULT)


def test_the_default_setting_may_not_allow_shell():
    with pytest.raises(ConfigError, match="must not contain shell"):
        EntitiesSettings.from_env({"BOB_RUNNER_TYPES_ALLOWED": "docker,shell"})
    settings = EntitiesSettings.from_env({"BOB_RUNNER_TYPES_ALLOWED": "podman, container"})
    assert settings.runner_types_allowed == ("docker", "podman")
    assert EntitiesSettings.from_env({}).runner_types_allowed == ("docker",)
