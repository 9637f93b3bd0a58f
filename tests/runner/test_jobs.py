"""How the runner takes jobs: claims, duplicates, capacity, poison messages."""

from __future__ import annotations

import asyncio
import logging

import aio_pika
import pytest

from bob_common import topology
from bob_pb import messages_pb2, pipeline_pb2
from tests.runner.harness import (
    RUNNER_TYPE,
    TERMINAL,
    claim_server,
    free_port,
    jobs_waiting,
    make_job,
    world,
)
from tests.waiting import await_until


@pytest.mark.parametrize("capacity", [1, 2])
def test_a_duplicate_delivery_executes_once(capacity, rabbit_url, test_image, caplog):
    caplog.set_level(logging.INFO, logger="runner_svc")

    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=capacity) as w:
            # Given the same job delivered twice
            job = make_job(test_image, ["echo once"])
            await w.publish(job)
            await w.publish(job)

            # When both deliveries have been handled
            await w.tap.terminal(job.run_id)
            await w.tap.wait_for(
                lambda: any("acked" in m for m in caplog.messages), "the duplicate to be handled"
            )
            w.signal()
            await w.stopped()

            # Then the run executed once, and neither delivery went back to the queue
            assert w.tap.statuses(job.run_id) == [messages_pb2.RUNNING, messages_pb2.PASSED]
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == ["once"]
            assert await jobs_waiting(w.channel) == 0
            if capacity == 1:  # one after the other: the claim turns the second away
                assert w.entities is not None
                assert len(w.entities.claims_of(job.run_id)) == 2
                assert any("not claimed (run is already claimed)" in m for m in caplog.messages)

    asyncio.run(scenario())


def test_never_more_runs_at_once_than_the_capacity(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=2) as w:
            jobs = [make_job(test_image, ["sleep 0.5"]) for _ in range(5)]
            for job in jobs:
                await w.publish(job)
            for job in jobs:
                assert (await w.tap.terminal(job.run_id)).status == messages_pb2.PASSED

            # A job is acked (and the next one delivered) only after its terminal event.
            running, most = set(), 0
            for event in w.tap.events:
                if event.HasField("status") and event.status.status == messages_pb2.RUNNING:
                    running.add(event.run_id)
                elif event.HasField("status") and event.status.status in TERMINAL:
                    running.discard(event.run_id)
                most = max(most, len(running))
            assert most == 2

    asyncio.run(scenario())


def test_an_undecodable_job_is_dead_lettered_and_consuming_goes_on(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            exchange, _ = await topology.declare_jobs(
                w.channel, RUNNER_TYPE, w.settings.common.queue_max_jobs
            )
            await exchange.publish(
                aio_pika.Message(b"\xff\x00 not a job", type="bob.v1.Job"),
                routing_key=RUNNER_TYPE,
            )
            job = make_job(test_image, ["echo still here"])
            await w.publish(job)

            assert (await w.tap.terminal(job.run_id)).status == messages_pb2.PASSED

            async def dead_and_reported() -> bool:
                dead = await w.channel.declare_queue(topology.DEAD_LETTER_QUEUE, passive=True)
                errors = await w.channel.declare_queue(topology.ERRORS_QUEUE, passive=True)
                return (dead.declaration_result.message_count == 1
                        and errors.declaration_result.message_count == 1)

            await await_until(dead_and_reported, what="the job in bob.dead, a report in bob.errors")
            errors = await w.channel.declare_queue(topology.ERRORS_QUEUE, passive=True)
            report = await errors.get(no_ack=True)
            assert b"dead-lettered a bob.v1.Job message" in report.body

    asyncio.run(scenario())


def test_a_job_is_kept_while_entities_is_unreachable(rabbit_url, test_image, caplog):
    caplog.set_level(logging.INFO, logger="runner_svc")
    port = free_port()

    async def scenario() -> None:
        # Given a runner whose entities service is down
        async with world(rabbit_url, entities_addr=f"127.0.0.1:{port}") as w:
            job = make_job(test_image, ["echo finally"])
            await w.publish(job)
            await w.tap.wait_for(
                lambda: any("cannot claim" in m for m in caplog.messages), "a failed claim",
            )
            # When entities comes up
            async with claim_server(port) as (_, entities):
                final = await w.tap.terminal(job.run_id, timeout=60)
                # Then the job, handed back meanwhile, runs
                assert final.status == messages_pb2.PASSED
                assert len(entities.claims_of(job.run_id)) == 1

    asyncio.run(scenario())


def test_a_step_that_needs_an_undeclared_resource_fails_before_anything_runs(
    rabbit_url, test_image
):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(test_image, [pipeline_pb2.Step(cmd="ls src", needs_resource="src")])
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.status == messages_pb2.FAILED
            assert final.reason == (
                "step 1 needs resource 'src', which the pipeline does not declare"
            )
            assert w.tap.statuses(job.run_id) == [messages_pb2.FAILED]

    asyncio.run(scenario())
