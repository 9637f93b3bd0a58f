"""How the runner takes jobs: claims, acks at claim, duplicates, capacity, poison
messages."""

from __future__ import annotations

import asyncio
import logging

import aio_pika
import pytest

from bob_common import topology
from bob_pb import messages_pb2, pipeline_pb2
from devcluster.cluster import free_port
from tests.runner.harness import (
    RUNNER_TYPE,
    TERMINAL,
    entities_server,
    jobs_waiting,
    make_job,
    no_container_left,
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
            assert w.tap.statuses(job.run_id) == [
                messages_pb2.INITIALIZED,
                messages_pb2.RUNNING,
                messages_pb2.PASSED,
            ]
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

            # A slot takes its next job only after its run's terminal event.
            running, most = set(), 0
            for event in w.tap.events:
                if event.HasField("status") and event.status.status == messages_pb2.RUNNING:
                    running.add(event.run_id)
                elif event.HasField("status") and event.status.status in TERMINAL:
                    running.discard(event.run_id)
                most = max(most, len(running))
            assert most == 2

    asyncio.run(scenario())


def test_a_job_is_acked_once_claimed_and_its_slot_stops_consuming_while_it_runs(
    rabbit_url, test_image
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=2) as w:
            # Given a run busy in a long step
            job = make_job(test_image, ["echo started; sleep 300"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "started" in w.tap.texts(job.run_id), "the step")

            # Then the broker holds nothing for it while it runs: the job was acked at its
            # claim, so no consumer timeout can redeliver it; only the free slot consumes
            await w.job_queue_becomes(ready=0, unacked=0, consumers=1)
            # And a second consumer sees nothing to take
            assert await jobs_waiting(w.channel) == 0
            assert w.tap.final(job.run_id) is None
            assert w.entities is not None and len(w.entities.claims_of(job.run_id)) == 1

            # When it ends, its slot consumes again
            await w.control(job.run_id, messages_pb2.STOP)
            await w.tap.terminal(job.run_id)
            await w.job_queue_becomes(ready=0, unacked=0, consumers=2)

    asyncio.run(scenario())


def test_with_capacity_one_no_job_is_claimed_while_another_runs(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=1) as w:
            assert w.entities is not None
            overlaps: list[object] = []

            def at_claim(request) -> None:
                # Whatever this runner executes at the moment it asks for another claim.
                if busy := w.service.executing():
                    overlaps.append((request.run_id, busy))

            w.entities.on_claim = at_claim
            jobs = [make_job(test_image, ["sleep 0.3"]) for _ in range(3)]
            for job in jobs:
                await w.publish(job)
            for job in jobs:
                assert (await w.tap.terminal(job.run_id)).status == messages_pb2.PASSED

            assert [r.run_id for r in w.entities.requests] == [j.run_id for j in jobs]
            assert overlaps == []

    asyncio.run(scenario())


def test_a_newer_attempt_of_a_run_executing_here_replaces_the_older_one(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=2) as w:
            # Given attempt 1 of a run executing here
            first = make_job(test_image, ["echo first; sleep 300"])
            await w.publish(first)
            await w.tap.wait_for(lambda: "first" in w.tap.texts(first.run_id), "attempt 1")

            # When entities has given the run a second attempt, and it comes here
            second = make_job(test_image, ["echo second"], run_id=first.run_id, attempt=2)
            await w.publish(second)
            final = await w.tap.terminal(first.run_id)

            # Then attempt 2 ran, and attempt 1 was abandoned without a word
            assert final.status == messages_pb2.PASSED
            ended = [
                e
                for e in w.tap.of(first.run_id)
                if e.HasField("status") and e.status.status in TERMINAL
            ]
            assert [e.attempt for e in ended] == [2]
            await no_container_left(docker_client, first.run_id)

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

            # Rejected: the job queue dead-letters it to entities (which keeps it raw on
            # bob.dead; no entities consumes here)
            async def dead_and_reported() -> bool:
                dead = await w.channel.declare_queue(topology.DEAD_JOBS_QUEUE, passive=True)
                errors = await w.channel.declare_queue(topology.ERRORS_QUEUE, passive=True)
                return (
                    dead.declaration_result.message_count == 1
                    and errors.declaration_result.message_count == 1
                )

            await await_until(
                dead_and_reported, what="the job in bob.jobs-dead, a report in bob.errors"
            )
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
                lambda: any("cannot claim" in m for m in caplog.messages),
                "a failed claim",
            )
            # When entities comes up
            async with entities_server(port) as (_, entities):
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
