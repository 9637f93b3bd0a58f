"""Bob's working directories: a step that needs a resource runs inside it, any other where
the step before it ran (the workspace, before any resource), and an artifact's path is
relative to the directory of the step producing it; on both executors."""

from __future__ import annotations

import asyncio
import io
import tarfile

from google.protobuf import json_format

from bob_pb import messages_pb2, pipeline_pb2
from devcluster.test_image import IMAGE
from runner_svc.spec import directories
from tests.runner.conftest import tar_of
from tests.runner.harness import make_job, world
from tests.support.http_stub import Answer, plugin_server

Step, Artifact, Resource = pipeline_pb2.Step, pipeline_pb2.Artifact, pipeline_pb2.Resource
OUT = messages_pb2.STDOUT
RES = Resource(name="res", type="external", provider="stub")


def _files(tar: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isreg()}


def test_a_step_runs_in_the_resource_it_needs_and_later_steps_stay_there(runner_type, rabbit_url):
    async def scenario() -> None:
        with plugin_server() as provider:
            provider.routes["/bob_resource"] = Answer(200, tar_of(("data.txt", b"42\n")))
            async with world(rabbit_url, runner_type=runner_type) as w:
                # Given a step before any resource, one that needs a resource, one after
                # it that needs none, and one that needs another resource as the last step
                # (which the Docker runner hands to the container's entry)
                w.entities.providers["stub"] = provider.url
                job = make_job(
                    IMAGE,
                    [
                        Step(cmd="pwd"),
                        Step(cmd="pwd; cat data.txt", needs_resource="res"),
                        Step(cmd="pwd; cat data.txt"),
                        Step(cmd="pwd; cat ../res/data.txt", needs_resource="other"),
                    ],
                    resources=[RES, Resource(name="other", type="external", provider="stub")],
                    runner_type=runner_type,
                )
                # When it runs
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)

                # Then the first ran in the workspace, the second in its resource, the
                # third stayed there (as in Bob), the last went into its own resource
                assert final.status == messages_pb2.PASSED, w.tap.describe()
                root, inside, _, after, _, last, _ = w.tap.texts(job.run_id, OUT)
                assert w.tap.texts(job.run_id, OUT)[2::2] == ["42", "42", "42"]
                assert inside == after == f"{root}/res"
                assert last == f"{root}/other"
                if runner_type == "docker":
                    assert root == "/workspace"

    asyncio.run(scenario())


def test_working_directories_follow_bobs_rule():
    assert directories([]) == []
    assert directories(["", "src", "", "", "lib", ""]) == ["", "src", "src", "src", "lib", "lib"]


def test_an_empty_needs_resource_means_no_resource(runner_type, rabbit_url):
    async def scenario() -> None:
        with plugin_server() as provider:
            async with world(rabbit_url, runner_type=runner_type) as w:
                # Given a pipeline as the Terraform provider sends it: needs_resource ""
                # on a step that needs none, beside a declared resource
                w.entities.providers["stub"] = provider.url
                pipeline = json_format.ParseDict(
                    {
                        "image": IMAGE,
                        "steps": [{"cmd": "pwd; ls", "needs_resource": ""}],
                        "resources": [{"name": "res", "type": "external", "provider": "stub"}],
                    },
                    pipeline_pb2.Pipeline(),
                )
                job = make_job(IMAGE, [], runner_type=runner_type)
                job.pipeline.CopyFrom(pipeline)
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)

                # Then the step ran in the workspace, and nothing was fetched
                assert final.status == messages_pb2.PASSED, w.tap.describe()
                [pwd] = w.tap.texts(job.run_id, OUT)
                assert runner_type == "shell" or pwd == "/workspace"
                assert not any("fetching" in t for t in w.tap.texts(job.run_id))
                assert provider.requests == []

    asyncio.run(scenario())


def test_an_artifact_path_is_relative_to_the_directory_of_its_step(
    runner_type, rabbit_url, plugins
):
    async def scenario() -> None:
        with plugin_server() as provider:
            provider.routes["/bob_resource"] = Answer(200, tar_of(("VERSION", b"1.0\n")))
            async with world(rabbit_url, runner_type=runner_type) as w:
                # Given a step in the resource that builds into dist/ and declares "dist",
                # and a step after it that declares "VERSION"
                w.entities.providers["stub"] = provider.url
                w.entities.stores["local"] = plugins.store_url
                job = make_job(
                    IMAGE,
                    [
                        Step(
                            cmd="mkdir dist && cp VERSION dist/app",
                            needs_resource="res",
                            produces_artifact=Artifact(name="app", path="dist", store="local"),
                        ),
                        Step(
                            cmd="echo 2.0 > VERSION",
                            produces_artifact=Artifact(name="v", path="VERSION", store="local"),
                        ),
                    ],
                    resources=[RES],
                    runner_type=runner_type,
                )
                # When it runs
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)

                # Then the store holds res/dist, named as the step saw it, and the
                # VERSION of the step after it, which ran in res/ too
                assert final.status == messages_pb2.PASSED, w.tap.describe()
                stored = plugins.store_dir / "test" / "pipeline" / job.run_id
                assert _files((stored / "app").read_bytes()) == {"dist/app": b"1.0\n"}
                assert _files((stored / "v").read_bytes()) == {"VERSION": b"2.0\n"}
                assert "[bob] uploading artifact app (res/dist) to store local" in (
                    w.tap.texts(job.run_id)
                )

    asyncio.run(scenario())


def test_a_missing_artifact_of_a_step_in_a_resource_names_its_path(
    runner_type, rabbit_url, plugins
):
    async def scenario() -> None:
        with plugin_server() as provider:
            provider.routes["/bob_resource"] = Answer(200, tar_of(("f", b"x")))
            async with world(rabbit_url, runner_type=runner_type) as w:
                w.entities.providers["stub"] = provider.url
                w.entities.stores["local"] = plugins.store_url
                job = make_job(
                    IMAGE,
                    [
                        Step(
                            cmd="true",
                            needs_resource="res",
                            produces_artifact=Artifact(name="a", path="out", store="local"),
                        )
                    ],
                    resources=[RES],
                    runner_type=runner_type,
                )
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)
                assert final.status == messages_pb2.FAILED
                assert final.reason == (
                    "step 1 produces artifact 'a': res/out does not exist in the working directory"
                )

    asyncio.run(scenario())


def test_a_resource_directory_a_step_turned_into_a_link_cannot_take_an_artifact_outside(
    rabbit_url, plugins
):
    # The shell runner confines nothing else, but what it uploads stays in the workspace
    # (a container confines everything to itself).
    async def scenario() -> None:
        with plugin_server() as provider:
            provider.routes["/bob_resource"] = Answer(200, tar_of(("f", b"x")))
            async with world(rabbit_url, runner_type="shell") as w:
                # Given a step that replaces the placed resource with a link to /etc
                w.entities.providers["stub"] = provider.url
                w.entities.stores["local"] = plugins.store_url
                job = make_job(
                    IMAGE,
                    [
                        Step(cmd="true", needs_resource="res"),
                        Step(cmd="cd .. && rm -r res && ln -s /etc res"),
                        Step(
                            cmd="true",
                            needs_resource="res",
                            produces_artifact=Artifact(name="a", path="passwd", store="local"),
                        ),
                    ],
                    resources=[RES],
                    runner_type="shell",
                )
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)

                # Then the step ran, but its artifact is refused and nothing is stored
                assert final.status == messages_pb2.FAILED
                assert final.reason == (
                    "step 3 produces artifact 'a': path 'res/passwd' lies outside the "
                    "working directory"
                )
                assert not (plugins.store_dir / "test" / "pipeline" / job.run_id).exists()

    asyncio.run(scenario())
