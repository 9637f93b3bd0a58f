"""The orphan sweep: containers on the engine whose run is nobody's any more go, whichever
runner made them; those of live runs stay, and so do those made for another entities."""

from __future__ import annotations

import asyncio
import logging
import uuid

from bob_pb import entities_pb2, messages_pb2
from devcluster.cluster import free_port
from runner_svc.executors.docker.entry import ENTRY
from runner_svc.executors.docker.executor import (
    LABEL_ATTEMPT,
    LABEL_ENTITIES,
    LABEL_RUN,
    LABEL_RUNNER,
)
from tests.runner.harness import containers_of, entities_server, make_job, world
from tests.support.containers import remove_quietly
from tests.waiting import await_until


def _container(docker_client, image: str, run_id: str, *, runner: str, attempt: int, entities: str):
    return docker_client.containers.run(
        image,
        entrypoint=ENTRY,
        stdin_open=True,
        network_mode="none",
        detach=True,
        labels={
            LABEL_RUN: run_id,
            LABEL_RUNNER: runner,
            LABEL_ATTEMPT: str(attempt),
            LABEL_ENTITIES: entities,
        },
    )


def _run(status: int, attempt: int, runner_id: str) -> entities_pb2.Run:
    return entities_pb2.Run(status=status, attempt=attempt, runner_id=runner_id)


def test_the_sweep_removes_containers_of_runs_that_moved_on_and_keeps_live_ones(
    rabbit_url, test_image, docker_client
):
    tag = uuid.uuid4().hex[:8]
    runner_id = f"test-runner-{tag}"
    made = []

    async def scenario() -> None:
        async with entities_server() as (addr, entities):
            # Given containers left by other runners (and one by this runner's earlier
            # life under another id), and one made for another entities
            def left(
                name: str, *, runner: str = f"gone-{tag}", attempt: int = 1, made_for: str = addr
            ) -> str:
                run_id = f"r-{name}-{tag}"
                made.append(
                    _container(
                        docker_client,
                        test_image,
                        run_id,
                        runner=runner,
                        attempt=attempt,
                        entities=made_for,
                    )
                )
                return run_id

            ended = left("ended")
            entities.runs[ended] = _run(messages_pb2.PASSED, 1, f"gone-{tag}")
            retried = left("retried")
            entities.runs[retried] = _run(messages_pb2.RUNNING, 2, f"other-{tag}")
            unknown = left("unknown")
            mine = left("mine", runner=f"earlier-{tag}")
            entities.runs[mine] = _run(messages_pb2.RUNNING, 1, runner_id)
            live = left("live", runner=f"other-{tag}")
            entities.runs[live] = _run(messages_pb2.RUNNING, 1, f"other-{tag}")
            foreign = left("foreign", made_for="10.0.0.1:7778")

            # When a runner starts and sweeps, with a run of its own executing
            async with world(
                rabbit_url, entities_addr=addr, runner_id=runner_id, runner_orphan_sweep_s=0.2
            ) as w:
                job = make_job(test_image, ["echo busy; sleep 300"])
                await w.publish(job)
                await w.tap.wait_for(lambda: "busy" in w.tap.texts(job.run_id), "the run")

                # Then the containers of runs that ended, moved on to another attempt,
                # are unknown or are this runner's without executing here, go
                async def gone() -> bool:
                    for run_id in (ended, retried, unknown, mine):
                        if await containers_of(docker_client, run_id):
                            return False
                    return True

                await await_until(gone, what="the orphans to be removed")
                # And after two more passes, the live run's container, the other entities'
                # and this runner's own running one are still there
                seen = entities.lookups.count(live)
                await w.tap.wait_for(
                    lambda: entities.lookups.count(live) >= seen + 2, "two more sweeps"
                )
                for run_id in (live, foreign, job.run_id):
                    assert len(await containers_of(docker_client, run_id)) == 1, run_id
                assert foreign not in entities.lookups
                assert job.run_id not in entities.lookups
                assert w.tap.final(job.run_id) is None

    try:
        asyncio.run(scenario())
    finally:
        remove_quietly(made)


def test_while_entities_cannot_answer_the_sweep_removes_nothing(
    rabbit_url, test_image, docker_client, caplog
):
    caplog.set_level(logging.INFO, logger="runner_svc")
    addr = f"127.0.0.1:{free_port()}"
    run_id = f"r-unanswered-{uuid.uuid4().hex[:8]}"
    container = _container(
        docker_client, test_image, run_id, runner="gone", attempt=1, entities=addr
    )

    def skipped() -> int:
        return sum("orphan sweep skipped" in m for m in caplog.messages)

    async def scenario() -> None:
        async with world(rabbit_url, entities_addr=addr, runner_orphan_sweep_s=0.2) as w:
            await w.tap.wait_for(lambda: skipped() >= 2, "two skipped sweeps")
            assert len(await containers_of(docker_client, run_id)) == 1

    try:
        asyncio.run(scenario())
    finally:
        container.remove(force=True)
