"""Leases: every heartbeat the runner renews, over gRPC, the lease of each run it executes,
and does what entities answers (go on, pause, stop, abandon); a reconnection to the broker
renews at once and brings back the consumers of the free slots only."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc

from bob_pb import entities_pb2, messages_pb2
from tests.runner.harness import TEST_TUNING, containers_of, make_job, no_container_left, world

# Beats so far apart that, within a test, only start-up and a reconnection renew.
SLOW_BEATS = dataclasses.replace(TEST_TUNING, heartbeat_s=600.0)


def test_each_renewal_names_the_runs_executing_here_with_their_attempt(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            assert w.entities is not None
            job = make_job(test_image, ["echo busy; sleep 300"], attempt=2)
            await w.publish(job)
            await w.tap.wait_for(lambda: w.entities.renewed(job.run_id), "a renewal of it")

            renewal = next(r for r in w.entities.renewals if r.runs)
            assert renewal.runner_id == w.settings.runner_id
            assert [(r.run_id, r.attempt) for r in renewal.runs] == [(job.run_id, 2)]

            # Once the run has ended, its lease is not renewed any more
            await w.control(job.run_id, messages_pb2.STOP)
            await w.tap.terminal(job.run_id)
            seen = len(w.entities.renewals)
            await w.tap.wait_for(lambda: len(w.entities.renewals) > seen + 1, "two more renewals")
            assert not w.entities.renewals[-1].runs

    asyncio.run(scenario())


def test_a_stop_ordered_by_the_lease_stops_the_run(rabbit_url, test_image, docker_client):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            assert w.entities is not None
            # Given a run busy in a long step
            job = make_job(test_image, ["echo started; sleep 300", "echo never"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "started" in w.tap.texts(job.run_id), "the step")

            # When entities answers a renewal with a stop (no command is broadcast)
            w.entities.orders[job.run_id] = entities_pb2.ORDER_STOP
            final = await w.tap.terminal(job.run_id)

            # Then the run stops as if told over the fanout
            assert final.status == messages_pb2.STOPPED
            assert final.reason == "stopped by request"
            assert "never" not in w.tap.texts(job.run_id)
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


def test_pause_and_run_orders_pause_and_resume_the_run(rabbit_url, test_image, docker_client):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            assert w.entities is not None
            job = make_job(test_image, ["echo waiting; sleep 1; echo woke", "echo after"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "waiting" in w.tap.texts(job.run_id), "step output")

            # When a renewal answers PAUSE, the run pauses
            w.entities.orders[job.run_id] = entities_pb2.ORDER_PAUSE
            await w.tap.wait_for(
                lambda: messages_pb2.PAUSED in w.tap.statuses(job.run_id), "PAUSED"
            )
            [container] = await containers_of(docker_client, job.run_id)
            assert container.status == "paused"
            # And it stays paused through later renewals
            seen = len(w.entities.renewed(job.run_id))
            await w.tap.wait_for(
                lambda: len(w.entities.renewed(job.run_id)) > seen + 1, "two more renewals"
            )
            assert w.tap.statuses(job.run_id) == [
                messages_pb2.INITIALIZED,
                messages_pb2.RUNNING,
                messages_pb2.PAUSED,
            ]

            # When a renewal answers RUN, it resumes and finishes
            w.entities.orders[job.run_id] = entities_pb2.ORDER_RUN
            final = await w.tap.terminal(job.run_id)
            assert final.status == messages_pb2.PASSED
            assert w.tap.statuses(job.run_id) == [
                messages_pb2.INITIALIZED,
                messages_pb2.RUNNING,
                messages_pb2.PAUSED,
                messages_pb2.RUNNING,
                messages_pb2.PASSED,
            ]
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == ["waiting", "woke", "after"]

    asyncio.run(scenario())


def test_abandon_kills_the_run_removes_its_container_and_publishes_nothing_more(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=1) as w:
            assert w.entities is not None
            # Given a run busy in a long step, and paused (its container frozen)
            job = make_job(test_image, ["echo started; sleep 300", "echo never"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "started" in w.tap.texts(job.run_id), "the step")
            w.entities.orders[job.run_id] = entities_pb2.ORDER_PAUSE
            await w.tap.wait_for(
                lambda: messages_pb2.PAUSED in w.tap.statuses(job.run_id), "PAUSED"
            )
            published = len(w.tap.of(job.run_id))

            # When entities says the run is not this runner's any more
            w.entities.orders[job.run_id] = entities_pb2.ORDER_ABANDON

            # Then the run is over here and its container gone
            await w.tap.wait_for(lambda: not w.service.executing(), "the run to be dropped")
            await no_container_left(docker_client, job.run_id)
            # And its slot takes the next job; by the time that one has ended, anything
            # the abandoned run had published would have arrived before it
            after = make_job(test_image, ["echo next"])
            await w.publish(after)
            assert (await w.tap.terminal(after.run_id)).status == messages_pb2.PASSED
            assert len(w.tap.of(job.run_id)) == published
            assert w.tap.final(job.run_id) is None

    asyncio.run(scenario())


def test_failing_renewals_are_retried_and_never_touch_the_runs(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            assert w.entities is not None
            # Given an entities that fails every renewal
            w.entities.renew_error = grpc.StatusCode.UNAVAILABLE
            job = make_job(test_image, ["echo started; sleep 1", "echo done"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "started" in w.tap.texts(job.run_id), "the step")
            seen = len(w.entities.renewals)

            # Then the runner keeps trying, and the run goes on to its end
            final = await w.tap.terminal(job.run_id)
            await w.tap.wait_for(lambda: len(w.entities.renewals) > seen, "a retried renewal")
            assert final.status == messages_pb2.PASSED
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == ["started", "done"]

    asyncio.run(scenario())


def test_after_a_reconnection_a_stop_missed_meanwhile_takes_effect_at_once(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, tuning=SLOW_BEATS) as w:
            assert w.entities is not None
            # Given a run in progress, whose stop entities holds but nobody broadcast (as
            # when the runner's control queue is gone with its connection)
            job = make_job(test_image, ["echo started; sleep 300"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "started" in w.tap.texts(job.run_id), "the step")
            w.entities.orders[job.run_id] = entities_pb2.ORDER_STOP

            # When the runner's broker connection drops and comes back
            await w.drop_connection()

            # Then it renews its leases on reconnecting, well before its next beat, and
            # the run stops
            final = await w.tap.terminal(job.run_id, timeout=60)
            assert final.status == messages_pb2.STOPPED
            assert [r.attempt for r in w.entities.renewed(job.run_id)] == [1]
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


def test_after_a_reconnection_free_slots_consume_again_and_busy_ones_do_not(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=2, tuning=SLOW_BEATS) as w:
            assert w.entities is not None
            # Given one slot busy with a run, the other free
            job = make_job(test_image, ["echo started; sleep 300"])
            await w.publish(job)
            await w.tap.wait_for(lambda: "started" in w.tap.texts(job.run_id), "the step")
            await w.job_queue_becomes(ready=0, unacked=0, consumers=1)
            renewals = len(w.entities.renewals)

            # When the connection drops and comes back (a reconnection renews the leases)
            await w.drop_connection()
            await w.tap.wait_for(
                lambda: len(w.entities.renewals) > renewals, "the runner to reconnect", 60
            )

            # Then only the free slot consumes again; the run goes on, not redelivered
            await w.job_queue_becomes(ready=0, unacked=0, consumers=1)
            assert len(w.entities.claims_of(job.run_id)) == 1
            other = make_job(test_image, ["echo other"])
            await w.publish(other)
            assert (await w.tap.terminal(other.run_id)).status == messages_pb2.PASSED
            assert w.tap.final(job.run_id) is None

            # And once the run ends, its slot consumes again too
            await w.control(job.run_id, messages_pb2.STOP)
            assert (await w.tap.terminal(job.run_id)).status == messages_pb2.STOPPED
            await w.job_queue_becomes(ready=0, unacked=0, consumers=2)

    asyncio.run(scenario())
