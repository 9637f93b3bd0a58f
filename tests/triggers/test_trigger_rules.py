"""A pipeline's triggers: refused at a put naming what is wrong; globs as GitHub Actions
writes them; which events and names a trigger matches; which resource it pins."""

from __future__ import annotations

import pytest

from bob_common import pipeline_rules, triggers

GIT = {"name": "source", "type": "external", "provider": "git", "params": {"repo": "/r"}}


def _pipeline(*trigger_list: dict, resources=(GIT,)) -> dict:
    return {
        "image": "busybox",
        "steps": [{"cmd": "true"}],
        "resources": list(resources),
        "triggers": list(trigger_list),
    }


def _problem(definition: dict) -> str:
    return pipeline_rules.problem(definition, pipeline_rules.STORE)


GOOD = {"repository": "acme/app", "secret": "hook"}


def test_a_sound_trigger_and_a_pipeline_without_triggers_pass():
    assert _problem(_pipeline(GOOD | {"events": ["push", "tag"], "branches": ["main"]})) == ""
    assert _problem(_pipeline()) == ""
    assert _problem({"image": "busybox", "steps": [{"cmd": "true"}]}) == ""


@pytest.mark.parametrize(
    ("trigger", "named"),
    [
        ({"secret": "hook"}, "trigger 1: needs a repository"),
        (GOOD | {"repository": "https://github.com/acme/app.git"}, "not a full name"),
        (GOOD | {"repository": "app"}, "not a full name"),
        ({"repository": "acme/app"}, "needs the name of its webhook secret"),
        (GOOD | {"secret": ".hidden"}, "is not a valid secret name"),
        (GOOD | {"events": ["merge"]}, "event 'merge' is not one of push, tag, pull_request"),
        (GOOD | {"events": ["push", "push"]}, "more than once"),
        (GOOD | {"tags": ["v*"]}, "lists tags but not the event 'tag'"),
        (GOOD | {"events": ["tag"], "branches": ["main"]}, "lists branches but neither"),
        (GOOD | {"branches": ["has space"]}, "no spaces"),
        (GOOD | {"resource": "nope"}, "'nope' is not an external resource"),
    ],
)
def test_an_unsound_trigger_is_refused_naming_the_problem(trigger, named):
    assert named in _problem(_pipeline(trigger))


def test_two_external_resources_need_the_trigger_to_name_the_pinned_one():
    other = GIT | {"name": "tools"}
    assert "name the one whose ref" in _problem(_pipeline(GOOD, resources=(GIT, other)))
    assert _problem(_pipeline(GOOD | {"resource": "tools"}, resources=(GIT, other))) == ""


def test_the_second_bad_trigger_is_named_by_its_place():
    assert _problem(_pipeline(GOOD, {"repository": "a/b"})).startswith(
        "trigger 2: needs the name of its webhook secret"
    )


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("main", "main", True),
        ("main", "main2", False),
        ("release/*", "release/1.0", True),
        ("release/*", "release/1.0/hotfix", False),
        ("release/**", "release/1.0/hotfix", True),
        ("v?.*", "v1.2", True),
        ("v?.*", "v10.2", False),
        ("feature-[x]", "feature-[x]", True),  # brackets are literal
        ("**", "any/thing", True),
    ],
)
def test_globs_match_within_and_across_path_segments(pattern, name, matched):
    assert triggers.glob_match(pattern, name) is matched


def test_a_trigger_matches_its_events_and_names_only():
    plain = GOOD
    assert triggers.matches(plain, "push", "any/branch")
    assert not triggers.matches(plain, "tag", "v1")  # push only, by default
    both = GOOD | {"events": ["push", "pull_request", "tag"], "branches": ["main"], "tags": ["v*"]}
    assert triggers.matches(both, "push", "main")
    assert not triggers.matches(both, "push", "dev")
    assert triggers.matches(both, "pull_request", "main")  # the target branch
    assert triggers.matches(both, "tag", "v1.0")
    assert not triggers.matches(both, "tag", "nightly")
    assert triggers.same_repository(plain, "ACME/App")


def test_the_pinned_resource_is_the_named_or_the_only_external_one():
    assert triggers.pinned_resource(GOOD, ["source"]) == "source"
    assert triggers.pinned_resource(GOOD, []) == ""
    assert triggers.pinned_resource(GOOD | {"resource": "b"}, ["a", "b"]) == "b"
