"""Spare containers: the next run of an image takes a container already started for it,
named after the run, with the pipeline's variables given to its steps; stale spares of
other runners are swept, fresh ones kept, and a spare a run took is that run's, whatever
its age."""

from __future__ import annotations

import asyncio
import time
import uuid

from bob_pb import entities_pb2, messages_pb2
from runner_svc.executors.docker.entry import ENTRY
from runner_svc.executors.docker.executor import LABEL_ENTITIES, LABEL_RUNNER, LABEL_SPARE
from runner_svc.executors.docker.spares import STALE_S, run_container_name
from tests.runner.harness import containers_of, entities_server, make_job, world
from tests.support.containers import remove_quietly
from tests.waiting import await_until


def _spares(docker_client, runner_id: str) -> list:
    return docker_client.containers.list(
        all=True, filters={"label": [f"{LABEL_RUNNER}={runner_id}", LABEL_SPARE]}
    )


def test_the_next_run_of_an_image_takes_the_spare_started_for_it(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            first = make_job(test_image, ["echo $WHO"], vars={"WHO": "first"})
            await w.publish(first)
            assert (await w.tap.terminal(first.run_id)).status == messages_pb2.PASSED
            runner_id = w.settings.runner_id

            # Given the spares started once the first run had its container
            async def two_spares() -> list:
                found = await asyncio.to_thread(_spares, docker_client, runner_id)
                return found if len(found) == 2 else []

            spares = await await_until(two_spares, what="two spare containers")

            # When the next run of the image comes
            second = make_job(test_image, ["echo $WHO; sleep 300"], vars={"WHO": "second"})
            await w.publish(second)
            await w.tap.wait_for(lambda: "second" in w.tap.texts(second.run_id), "its step")

            # Then it runs in the spare, now named after the run, with its own variables
            [taken] = await containers_of(docker_client, second.run_id)
            assert taken.id in {spare.id for spare in spares}
            assert taken.attrs["Names"] == ["/" + run_container_name(second.run_id, 1)]
            assert "first" in w.tap.texts(first.run_id)
            await w.control(second.run_id, messages_pb2.STOP)
            await w.tap.terminal(second.run_id)
        # And no spare outlives the runner
        assert await asyncio.to_thread(_spares, docker_client, runner_id) == []

    asyncio.run(scenario())


def _at_least(count, wanted: int):
    async def probe() -> bool:
        return count() >= wanted

    return probe


def test_the_sweep_removes_stale_spares_of_other_runners_and_orphans_that_took_one(
    rabbit_url, test_image, docker_client
):
    tag = uuid.uuid4().hex[:8]
    made = []

    async def scenario() -> None:
        async with entities_server() as (addr, entities):

            def container(name: str, labels: dict[str, str]):
                made.append(
                    docker_client.containers.run(
                        test_image,
                        entrypoint=ENTRY,
                        stdin_open=True,
                        network_mode="none",
                        detach=True,
                        name=name,
                        labels={LABEL_RUNNER: f"gone-{tag}", LABEL_ENTITIES: addr, **labels},
                    )
                )
                return made[-1]

            long_ago = str(int(time.time() - STALE_S - 60))
            stale = container(f"bob-spare-gone-{tag}", {LABEL_SPARE: long_ago})
            fresh = container(f"bob-spare-gone2-{tag}", {LABEL_SPARE: str(int(time.time()))})
            # Spares taken long ago (they keep their spare label): one by a run that has
            # moved on to another attempt, one by a run still going
            moved_on, going = f"r-{uuid.uuid4()}", f"r-{uuid.uuid4()}"
            entities.runs[moved_on] = entities_pb2.Run(
                status=messages_pb2.RUNNING, attempt=2, runner_id=f"other-{tag}"
            )
            entities.runs[going] = entities_pb2.Run(
                status=messages_pb2.RUNNING, attempt=1, runner_id=f"gone-{tag}"
            )
            orphan = container(run_container_name(moved_on, 1), {LABEL_SPARE: long_ago})
            live = container(run_container_name(going, 1), {LABEL_SPARE: long_ago})

            async with world(rabbit_url, entities_addr=addr, runner_orphan_sweep_s=0.2):

                def exists(container_id: str) -> bool:
                    # Sparse: inspecting one being removed would fail.
                    return bool(
                        docker_client.containers.list(
                            all=True, sparse=True, filters={"id": container_id}
                        )
                    )

                async def swept() -> bool:
                    return not any([await asyncio.to_thread(exists, c.id) for c in (stale, orphan)])

                await await_until(swept, what="the stale spare and the orphan to go")
                # And, two sweeps later, the fresh spare and the live run's are still there
                seen = entities.lookups.count(going)
                await await_until(
                    _at_least(lambda: entities.lookups.count(going), seen + 2),
                    what="two more sweeps",
                )
                assert await asyncio.to_thread(exists, fresh.id)
                assert await asyncio.to_thread(exists, live.id)

    try:
        asyncio.run(scenario())
    finally:
        remove_quietly(made)
