"""The sweep and the dead-job consumer in a running entities service, against a real
RabbitMQ (a vhost per test) and SQLite file."""

from __future__ import annotations

import asyncio

import aio_pika

from bob_common import amqp, topology
from bob_pb import entities_pb2, messages_pb2
from tests.entities.test_events import running_service
from tests.waiting import await_until

E = entities_pb2
M = messages_pb2
FAST = {"lease_s": 0.3, "sweep_s": 0.1, "max_attempts": 2}


async def take_job(channel: aio_pika.abc.AbstractChannel, run_id: str, attempt: int) -> M.Job:
    """The job of this run and attempt from the docker queue (others are dropped)."""
    queue = await channel.get_queue(topology.job_queue_name("docker"))

    async def next_job() -> M.Job | None:
        while message := await queue.get(no_ack=True, fail=False):
            job = M.Job.FromString(message.body)
            if (job.run_id, job.attempt) == (run_id, attempt):
                return job
        return None

    return await await_until(next_job, what=f"a job of attempt {attempt}")


def test_a_silent_runners_run_is_queued_again_then_failed_as_runner_lost(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url, **FAST) as bob:
            run_id = await bob.claimed_run()  # by runner-1, which never renews

            retry = await take_job(bob.channel, run_id, attempt=2)
            claim = await bob.stub.ClaimRun(
                E.ClaimRunRequest(run_id=run_id, attempt=2, runner_id="runner-2")
            )
            failed = await await_until(lambda: bob.run_with(run_id, M.FAILED), what="failed")

            assert (retry.run_id, retry.first_line_no) == (run_id, 1)
            assert claim.claimed
            assert failed.reason.startswith("runner lost: runner-2")
            logs = await bob.stub.GetLogs(E.GetLogsRequest(run_id=run_id, limit=10))
            assert [line.split(":")[0] for line in logs.lines] == ["[bob] runner lost"] * 2

    asyncio.run(main())


def test_a_renewed_lease_keeps_the_run(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url, **FAST) as bob:
            run_id = await bob.claimed_run()
            renew = E.RenewLeasesRequest(
                runner_id="runner-1", runs=[E.RunAttempt(run_id=run_id, attempt=1)]
            )
            # Renewing for ten lease lengths, then checking the run is still attempt 1:
            for _ in range(30):
                answer = await bob.stub.RenewLeases(renew)
                assert [i.order for i in answer.instructions] == [E.ORDER_RUN]
                await asyncio.sleep(0.1)

            run = await bob.stub.GetRun(E.RunRef(run_id=run_id))
            assert (run.status, run.attempt) == (M.INITIALIZING, 1)

    asyncio.run(main())


def test_a_dead_lettered_job_is_queued_again_and_reported(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url, **FAST) as bob:
            await bob.claimed_run()  # declares the pipeline
            job = await bob.stub.CreateRun(E.CreateRunRequest(group="dev", name="app"))
            first = await take_job(bob.channel, job.run_id, attempt=1)
            dead = await bob.channel.get_exchange(topology.DEAD_JOBS_EXCHANGE)

            await dead.publish(
                amqp.encode(
                    first,
                    headers={"x-death": [{"reason": "delivery_limit", "queue": "bob.jobs.docker"}]},
                ),
                routing_key="",
            )

            again = await take_job(bob.channel, job.run_id, attempt=1)
            assert again == job
            errors = await bob.channel.get_queue(topology.ERRORS_QUEUE)
            error = await await_until(
                lambda: errors.get(no_ack=True, fail=False), what="an error report"
            )
            assert error.body.decode() == (
                f"entities: run {job.run_id}: job of attempt 1 "
                f"delivered {topology.DELIVERY_LIMIT} times without being claimed"
            )

    asyncio.run(main())


def test_the_sweep_prunes_the_journal_to_its_bound(db_url, rabbit_url):
    async def main() -> None:
        async with running_service(db_url, rabbit_url, events_keep=2, sweep_s=0.1) as bob:
            # Given more events than the journal keeps
            for name in ("a", "b", "c", "d"):
                await bob.stub.PutLogger(E.Plugin(name=name, url="http://127.0.0.1:9"))

            async def pruned():
                events = (await bob.stub.ListEvents(E.ListEventsRequest())).events
                return events if len(events) == 2 else None

            # Then a sweep leaves the newest two
            kept = await await_until(pruned, what="the journal pruned to 2 events")
            assert [e.message for e in kept] == ["Logger c registered", "Logger d registered"]

    asyncio.run(main())
