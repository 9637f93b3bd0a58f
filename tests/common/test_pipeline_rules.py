"""The pipeline rules, each written once: which a put refuses (STORE), which fail a run
(RUN), and that the runner's RunSpec reads as the definition entities stores."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from google.protobuf import json_format

from bob_common.pipeline_rules import RUN, STORE, problem, relative_inside
from bob_pb import messages_pb2, pipeline_pb2
from runner_svc.spec import from_job

OK = {"image": "busybox", "steps": [{"cmd": "true"}]}
SRC = {"name": "src", "type": "external", "provider": "git"}


def _with(**changes):
    return {**OK, **changes}


def _artifact(name, path="out"):
    return {"cmd": "make", "produces_artifact": {"name": name, "path": path, "store": "s"}}


LIB = {"name": "lib", "type": "internal", "provider": "s", "params": {"group": "dev"}}
BROKEN = [
    (_with(image=""), "a pipeline needs an image", "a pipeline needs an image"),
    (_with(steps=[]), "a pipeline needs at least one step", ""),
    (_with(resources=[SRC, SRC]), "resource 'src' is declared more than once", ""),
    (_with(steps=[{"cmd": "a"}, {"cmd": ""}]), "step 2 has no cmd", ""),
    (
        _with(steps=[{"cmd": "ls", "needs_resource": "src"}]),
        "step 1 needs resource 'src', which is not declared",
        "step 1 needs resource 'src', which the pipeline does not declare",
    ),
    (
        _with(steps=[_artifact("bin"), _artifact("bin")]),
        "artifact 'bin' is produced by more than one step",
        "",
    ),
    (
        _with(resources=[{**SRC, "type": "magic"}]),
        "resource 'src' has type 'magic'; it must be 'external' or 'internal'",
        "resource 'src' has type 'magic'; it must be 'external' or 'internal'",
    ),
    (
        _with(resources=[{**SRC, "name": ".."}]),
        "",
        "resource name '..' is not a plain directory name",
    ),
    (
        _with(resources=[LIB]),
        "",
        "internal resource 'lib' needs the params group, name, run_id (missing: name, run_id)",
    ),
    (
        _with(steps=[_artifact("etc", "../etc")]),
        "",
        "step 1 produces artifact 'etc' from '../etc': the path must be relative and stay "
        "inside the working directory",
    ),
]


@pytest.mark.parametrize(("definition", "at_store", "at_run"), BROKEN)
def test_each_rule_is_in_the_set_that_enforces_it_with_its_message(definition, at_store, at_run):
    assert problem(definition, STORE) == at_store
    assert problem(definition, RUN) == at_run


def test_a_sound_pipeline_breaks_no_rule_and_an_empty_need_is_none():
    sound = _with(
        resources=[SRC, {**LIB, "params": {"group": "g", "name": "n", "run_id": "r"}}],
        steps=[{"cmd": "make", "needs_resource": "src"}, {"cmd": "ls", "needs_resource": ""}],
    )
    assert problem(sound, STORE) == problem(sound, RUN) == ""


def test_the_first_rule_broken_is_the_one_named():
    both = _with(image="", steps=[])
    assert problem(both, STORE) == "a pipeline needs an image"


@pytest.mark.parametrize(
    ("path", "inside"),
    [("out", True), ("a/b", True), ("v1..2", True), ("", False), ("/etc", False)]
    + [("../x", False), ("a/../../x", False), ("a\0b", False)],
)
def test_an_artifact_path_must_stay_inside_the_working_directory(path, inside):
    assert relative_inside(path) is inside


@pytest.mark.parametrize(("definition", "_", "at_run"), BROKEN)
def test_the_runners_spec_reads_as_the_stored_definition(definition, _, at_run):
    message = json_format.ParseDict(definition, pipeline_pb2.Pipeline())
    spec = from_job(messages_pb2.Job(run_id="r-1", attempt=1, pipeline=message))
    stored = json_format.MessageToDict(message, preserving_proto_field_name=True)

    assert problem(asdict(spec), RUN) == problem(stored, RUN) == at_run
