"""Resources: fetched by the runner (the build itself never talks to a plugin), checked,
and placed in the working directory as <name>/ before the step that needs them, which
runs inside that directory (test_step_directories.py); on both executors."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from bob_pb import messages_pb2, pipeline_pb2
from devcluster.test_image import IMAGE
from runner_svc.tuning import Tuning
from tests.runner.conftest import tar_of
from tests.runner.harness import TEST_TUNING, make_job, world
from tests.support.http_stub import Answer, plugin_server

Step, Resource = pipeline_pb2.Step, pipeline_pb2.Resource
OUT = messages_pb2.STDOUT


def _git(plugins, name: str = "src", ref: str = "main") -> Resource:
    return Resource(
        name=name, type="external", provider="git", params={"repo": str(plugins.repo), "ref": ref}
    )


def test_a_git_resource_is_in_its_directory_when_the_step_runs(runner_type, rabbit_url, plugins):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            # Given a pipeline whose step needs a checkout of a git repository
            w.entities.providers["git"] = plugins.git_url
            job = make_job(
                IMAGE,
                [
                    Step(cmd="cat README; sh build.sh; ls", needs_resource="src"),
                    Step(cmd="ls ../src"),
                ],
                resources=[_git(plugins)],
                runner_type=runner_type,
            )
            # When it runs
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)

            # Then the step ran among the repository's files (its build wrote there), and
            # so did the next one
            assert final.status == messages_pb2.PASSED, w.tap.describe()
            assert w.tap.texts(job.run_id, OUT) == [
                "hello from git",
                "README",
                "app.bin",
                "build.sh",
                "README",
                "app.bin",
                "build.sh",
            ]
            assert "[bob] fetching resource src from provider git" in w.tap.texts(job.run_id)

    asyncio.run(scenario())


def test_a_resource_is_fetched_once_per_run_with_its_params_url_encoded(runner_type, rabbit_url):
    async def scenario() -> None:
        with plugin_server() as provider:
            provider.routes["/bob_resource"] = Answer(200, tar_of(("data.txt", b"42\n")))
            async with world(rabbit_url, runner_type=runner_type) as w:
                w.entities.providers["stub"] = provider.url
                resource = Resource(
                    name="res",
                    type="external",
                    provider="stub",
                    params={"path": "/a dir/x", "q": "a&b=c"},
                )
                job = make_job(
                    IMAGE,
                    [
                        Step(cmd="cat data.txt", needs_resource="res"),
                        Step(cmd="echo more >> data.txt; cat data.txt", needs_resource="res"),
                    ],
                    resources=[resource],
                    runner_type=runner_type,
                )
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)

                assert final.status == messages_pb2.PASSED, w.tap.describe()
                # Placed once: the second step sees what the first left
                assert w.tap.texts(job.run_id, OUT) == ["42", "42", "more"]
                fetches = [r for r in provider.requests if r.startswith("/bob_resource")]
                assert fetches == ["/bob_resource?path=%2Fa+dir%2Fx&q=a%26b%3Dc"]

    asyncio.run(scenario())


def test_an_internal_resource_is_an_artifact_of_another_run(runner_type, rabbit_url, plugins):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            # Given an artifact that an earlier run left in the store
            w.entities.stores["local"] = plugins.store_url
            earlier = f"r-{uuid.uuid4()}"
            stored = plugins.store_dir / "dev" / "lib" / earlier / "dist"
            stored.parent.mkdir(parents=True)
            stored.write_bytes(tar_of(("dist/lib.so", b"shared object\n")))
            # When a run needs it as an internal resource
            resource = Resource(
                name="lib",
                type="internal",
                provider="local",
                params={"group": "dev", "name": "lib", "run_id": earlier, "artifact": "dist"},
            )
            job = make_job(
                IMAGE,
                [Step(cmd="cat dist/lib.so", needs_resource="lib")],
                resources=[resource],
                runner_type=runner_type,
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            # Then it finds the artifact's files in lib/, where it runs
            assert final.status == messages_pb2.PASSED, w.tap.describe()
            assert w.tap.texts(job.run_id, OUT) == ["shared object"]

    asyncio.run(scenario())


def test_a_tar_with_a_dotdot_entry_fails_the_run_and_writes_nothing_outside(
    runner_type, rabbit_url
):
    escape = f"bob-escape-{uuid.uuid4().hex[:8]}"
    outside = Path(tempfile.gettempdir()) / escape

    async def scenario() -> None:
        with plugin_server() as provider:
            # Given a provider whose tar climbs out of the resource directory, twice
            evil = tar_of(("ok.txt", b"fine"), (f"../../{escape}", b"owned"))
            provider.routes["/bob_resource"] = Answer(200, evil)
            async with world(rabbit_url, runner_type=runner_type) as w:
                w.entities.providers["evil"] = provider.url
                job = make_job(
                    IMAGE,
                    [Step(cmd="echo never", needs_resource="res")],
                    resources=[Resource(name="res", type="external", provider="evil")],
                    runner_type=runner_type,
                )
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)

                # Then the run failed saying why, its step never ran, nothing escaped
                assert final.status == messages_pb2.FAILED
                assert final.reason == (
                    f"step 1 needs resource 'res': entry '../../{escape}' leaves the "
                    "directory with '..'"
                )
                assert "never" not in w.tap.texts(job.run_id)
                assert not outside.exists()

    asyncio.run(scenario())


def test_an_archive_over_the_size_limit_fails_the_run(runner_type, rabbit_url):
    async def scenario() -> None:
        with plugin_server() as provider:
            provider.routes["/bob_resource"] = Answer(200, tar_of(("big", b"x" * 5000)))
            tuning = Tuning(**{**TEST_TUNING.__dict__, "archive_max_bytes": 4096})
            async with world(rabbit_url, runner_type=runner_type, tuning=tuning) as w:
                w.entities.providers["stub"] = provider.url
                job = make_job(
                    IMAGE,
                    [Step(cmd="echo never", needs_resource="res")],
                    resources=[Resource(name="res", type="external", provider="stub")],
                    runner_type=runner_type,
                )
                await w.publish(job)
                final = await w.tap.terminal(job.run_id)
                assert final.status == messages_pb2.FAILED
                assert final.reason == (
                    "step 1 needs resource 'res': archive is larger than 4096 bytes unpacked, "
                    "headers included (BOB_RUNNER_ARCHIVE_MAX_BYTES)"
                )

    asyncio.run(scenario())


def test_an_unknown_provider_or_a_provider_error_fails_the_run_saying_which(rabbit_url, test_image):
    async def scenario() -> None:
        with plugin_server() as provider:
            provider.routes["/bob_resource"] = Answer(404, b"no such repository")
            async with world(rabbit_url) as w:
                w.entities.providers["broken"] = provider.url
                unknown = make_job(
                    test_image,
                    [Step(cmd="true", needs_resource="r")],
                    resources=[Resource(name="r", type="external", provider="nope")],
                )
                failing = make_job(
                    test_image,
                    [Step(cmd="true", needs_resource="r")],
                    resources=[Resource(name="r", type="external", provider="broken")],
                )
                for job in (unknown, failing):
                    await w.publish(job)

                assert (await w.tap.terminal(unknown.run_id)).reason == (
                    "step 1 needs resource 'r': resource provider 'nope' is not registered"
                )
                # The provider's status, not its body (README: Plugin URLs)
                assert (await w.tap.terminal(failing.run_id)).reason == (
                    "step 1 needs resource 'r': resource provider 'broken' answered 404 Not Found"
                )

    asyncio.run(scenario())


def test_a_malformed_resource_declaration_fails_before_anything_runs(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(
                test_image,
                [Step(cmd="true", needs_resource="lib")],
                resources=[
                    Resource(name="lib", type="internal", provider="local", params={"group": "dev"})
                ],
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.reason == (
                "internal resource 'lib' needs the params group, name, run_id "
                "(missing: name, run_id)"
            )
            assert w.tap.statuses(job.run_id) == [messages_pb2.FAILED]

    asyncio.run(scenario())
