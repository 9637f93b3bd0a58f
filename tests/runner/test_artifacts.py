"""Artifacts: after a step passes, the runner streams a tar of its path to the artifact
store; a missing path or a store error fails the run; on both executors."""

from __future__ import annotations

import asyncio
import io
import tarfile

from bob_pb import messages_pb2, pipeline_pb2
from devcluster.test_image import IMAGE
from tests.runner.harness import make_job, world
from tests.support.http_stub import plugin_server

Step, Artifact = pipeline_pb2.Step, pipeline_pb2.Artifact


def _files(tar: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isreg()}


def test_an_artifact_is_uploaded_as_a_tar_of_its_path_after_its_step(
    runner_type, rabbit_url, plugins
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            # Given a step that builds into out/ and declares it as an artifact
            w.entities.stores["local"] = plugins.store_url
            job = make_job(
                IMAGE,
                [
                    Step(
                        cmd="mkdir -p out/bin && echo binary > out/bin/app && "
                        "head -c 300000 /dev/zero > out/zeros",
                        produces_artifact=Artifact(name="app", path="out", store="local"),
                    ),
                    Step(cmd="echo after"),
                ],
                runner_type=runner_type,
            )
            # When it runs
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)

            # Then the store holds a tar of out/, and the run went on
            assert final.status == messages_pb2.PASSED, w.tap.describe()
            stored = plugins.store_dir / "test" / "pipeline" / job.run_id / "app"
            assert _files(stored.read_bytes()) == {
                "out/bin/app": b"binary\n",
                "out/zeros": b"\0" * 300000,
            }
            texts = w.tap.texts(job.run_id)
            assert texts.index("[bob] uploading artifact app (out) to store local") < (
                texts.index("[bob] step 2/2: echo after")
            )

    asyncio.run(scenario())


def test_a_missing_artifact_path_fails_the_run_and_later_steps_never_run(
    runner_type, rabbit_url, plugins
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            w.entities.stores["local"] = plugins.store_url
            job = make_job(
                IMAGE,
                [
                    Step(
                        cmd="true",
                        produces_artifact=Artifact(name="a", path="nothing/here", store="local"),
                    ),
                    Step(cmd="echo never"),
                ],
                runner_type=runner_type,
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.status == messages_pb2.FAILED
            assert final.reason == (
                "step 1 produces artifact 'a': nothing/here does not exist in the working directory"
            )
            assert "never" not in w.tap.texts(job.run_id)
            assert not (plugins.store_dir / "test" / "pipeline" / job.run_id).exists()

    asyncio.run(scenario())


def test_a_store_error_or_an_unknown_store_fails_the_run_saying_which(rabbit_url, test_image):
    async def scenario() -> None:
        # The stub answers GETs only: a POST gets 501
        with plugin_server() as store:
            async with world(rabbit_url) as w:
                w.entities.stores["stub"] = store.url
                refused = make_job(
                    test_image,
                    [
                        Step(
                            cmd="echo x > f",
                            produces_artifact=Artifact(name="f", path="f", store="stub"),
                        )
                    ],
                )
                unknown = make_job(
                    test_image,
                    [
                        Step(
                            cmd="echo x > f",
                            produces_artifact=Artifact(name="f", path="f", store="no"),
                        )
                    ],
                )
                for job in (refused, unknown):
                    await w.publish(job)
                reason = (await w.tap.terminal(refused.run_id)).reason
                assert reason.startswith(
                    "step 1 produces artifact 'f': artifact store 'stub' answered 501"
                )
                assert (await w.tap.terminal(unknown.run_id)).reason == (
                    "step 1 produces artifact 'f': artifact store 'no' is not registered"
                )

    asyncio.run(scenario())


def test_an_artifact_path_outside_the_working_directory_fails_before_anything_runs(
    rabbit_url, test_image
):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(
                test_image,
                [
                    Step(
                        cmd="true",
                        produces_artifact=Artifact(name="etc", path="../etc", store="local"),
                    )
                ],
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.reason == (
                "step 1 produces artifact 'etc' from '../etc': the path must be relative and "
                "stay inside the working directory"
            )
            assert w.tap.statuses(job.run_id) == [messages_pb2.FAILED]

    asyncio.run(scenario())


def test_a_stopped_run_uploads_nothing(runner_type, rabbit_url, plugins):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type=runner_type) as w:
            w.entities.stores["local"] = plugins.store_url
            job = make_job(
                IMAGE,
                [
                    Step(
                        cmd="echo partial > out; echo working; sleep 300",
                        produces_artifact=Artifact(name="out", path="out", store="local"),
                    )
                ],
                runner_type=runner_type,
            )
            await w.publish(job)
            await w.tap.wait_for(lambda: "working" in w.tap.texts(job.run_id), "the step")
            await w.control(job.run_id, messages_pb2.STOP)
            final = await w.tap.terminal(job.run_id, timeout=15)

            assert final.status == messages_pb2.STOPPED
            assert not (plugins.store_dir / "test" / "pipeline" / job.run_id).exists()
            assert not any("uploading" in t for t in w.tap.texts(job.run_id))

    asyncio.run(scenario())
