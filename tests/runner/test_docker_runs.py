"""A runner with the Docker executor, end to end over real RabbitMQ and Docker: jobs in,
events out. Only ClaimRun is a stand-in (tests.runner.harness)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bob_pb import messages_pb2, pipeline_pb2
from runner_svc.executors.docker.spares import run_container_name
from tests.runner.harness import containers_of, make_job, no_container_left, world


def test_steps_share_the_file_system_and_see_their_vars(rabbit_url, test_image, docker_client):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            # Given a pipeline whose second step reads what the first wrote
            job = make_job(
                test_image,
                [
                    "echo hello > greeting.txt; pwd",
                    pipeline_pb2.Step(
                        cmd='cat greeting.txt; echo "$WHO from $WHERE"; echo oops >&2',
                        vars={"WHO": "step two"},
                    ),
                ],
                vars={"WHO": "pipeline", "WHERE": "bob"},
            )
            # When it runs
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)

            # Then it passed, and each output line came from its stream
            assert final.status == messages_pb2.PASSED, w.tap.describe()
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == [
                "/workspace",
                "hello",
                "step two from bob",
            ]
            assert w.tap.texts(job.run_id, messages_pb2.STDERR) == ["oops"]
            assert [(s.index, s.exit_code) for s in w.tap.steps(job.run_id)] == [(0, 0), (1, 0)]
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


def test_events_are_numbered_gap_free_and_come_in_lifecycle_order(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, log_batch_lines=3) as w:
            job = make_job(test_image, ["seq 1 10", "echo done"])
            await w.publish(job)
            await w.tap.terminal(job.run_id)
            events = w.tap.of(job.run_id)

            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert {(e.attempt, e.runner_id) for e in events} == {(1, w.settings.runner_id)}
            assert all(e.at_ms > 0 for e in events)
            lines = w.tap.lines(job.run_id)
            assert [ln.line_no for ln in lines] == list(range(len(lines)))
            # No batch holds more than BOB_LOG_BATCH_LINES lines.
            assert max(len(e.logs.lines) for e in events if e.HasField("logs")) <= 3

            shape = []
            for e in events:
                kind = e.WhichOneof("body")
                if kind == "status":
                    shape.append(messages_pb2.RunStatus.Name(e.status.status))
                elif kind == "step":
                    shape.append(f"step {e.step.index}")
                else:
                    shape.extend(
                        ln.text if ln.stream == messages_pb2.SYSTEM else "out"
                        for ln in e.logs.lines
                    )
            assert shape == [
                "INITIALIZED",
                "RUNNING",
                "[bob] step 1/2: seq 1 10",
                *["out"] * 10,
                "step 0",
                "[bob] step 2/2: echo done",
                "out",
                "step 1",
                "[bob] run passed",
                "PASSED",
            ]

    asyncio.run(scenario())


def test_a_retried_attempt_numbers_its_log_lines_on_from_the_jobs_first_line_no(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, log_batch_lines=2) as w:
            # Given attempt 2 of a run whose first attempt wrote 40 lines
            job = make_job(test_image, ["seq 1 5"], attempt=2, first_line_no=40)
            await w.publish(job)
            await w.tap.terminal(job.run_id)

            # Then its lines continue the run's log, gap-free, while its events start at 1
            lines = w.tap.lines(job.run_id)
            assert [ln.line_no for ln in lines] == list(range(40, 40 + len(lines)))
            assert w.tap.of(job.run_id)[0].seq == 1
            assert {e.attempt for e in w.tap.of(job.run_id)} == {2}

    asyncio.run(scenario())


def test_a_failing_step_fails_the_run_and_later_steps_never_run(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job(test_image, ["echo one", "echo two; exit 3", "echo three"])
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)

            assert final.status == messages_pb2.FAILED
            assert final.reason == "step 2 exited with 3"
            assert [(s.index, s.exit_code) for s in w.tap.steps(job.run_id)] == [(0, 0), (1, 3)]
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == ["one", "two"]
            system = w.tap.texts(job.run_id, messages_pb2.SYSTEM)
            assert "[bob] step 3/3: echo three" not in system
            assert system[-1] == "[bob] run failed: step 2 exited with 3"
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


def test_the_last_step_is_the_containers_own_process_and_earlier_ones_execs(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            since = time.time() - 1
            job = make_job(
                test_image, ["echo one", "echo two", "cat; echo three; exit 4"], vars={"WHO": "bob"}
            )
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            await no_container_left(docker_client, job.run_id)

            # The last step ran with an empty stdin, and its code is the run's reason
            assert final.reason == "step 3 exited with 4", w.tap.describe()
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == ["one", "two", "three"]
            # It cost no exec, and the container ended by itself with its exit code
            events = docker_client.events(
                since=since, until=time.time() + 1, decode=True, filters={"type": "container"}
            )
            name = run_container_name(job.run_id, 1)
            ours = [
                e["Action"]
                for e in events
                if e.get("Actor", {}).get("Attributes", {}).get("name") == name
            ]
            assert [a for a in ours if a.startswith("exec_start")] == [
                "exec_start: /bin/sh -c echo one",
                "exec_start: /bin/sh -c echo two",
            ], ours
            assert "kill" not in ours
            assert [
                e["Actor"]["Attributes"]["exitCode"]
                for e in docker_client.events(
                    since=since,
                    until=time.time() + 1,
                    decode=True,
                    filters={"type": "container", "event": "die", "container": name},
                )
            ] == ["4"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("settings", "mode", "interfaces"),
    [({}, "bridge", ["eth0", "lo"]), ({"runner_network": "none"}, "none", ["lo"])],
    ids=["default", "none"],
)
def test_builds_are_on_dockers_default_network_unless_told_none(
    rabbit_url, test_image, docker_client, settings, mode, interfaces
):
    # Only the interfaces are looked at: no traffic leaves the machine.
    async def scenario() -> None:
        async with world(rabbit_url, **settings) as w:
            job = make_job(test_image, ["ls /sys/class/net; sleep 30"])
            await w.publish(job)
            await w.tap.wait_for(
                lambda: w.tap.texts(job.run_id, messages_pb2.STDOUT), "the interfaces listed"
            )
            [container] = await containers_of(docker_client, job.run_id)
            attrs = await asyncio.to_thread(docker_client.api.inspect_container, container.id)
            await w.control(job.run_id, messages_pb2.STOP)
            await w.tap.terminal(job.run_id)

            # By default Docker's bridge, as in Bob; with BOB_RUNNER_NETWORK=none, only
            # the loopback interface
            assert attrs["HostConfig"]["NetworkMode"] == mode
            assert w.tap.texts(job.run_id, messages_pb2.STDOUT) == interfaces

    asyncio.run(scenario())


def test_an_image_that_cannot_be_pulled_fails_the_run_with_the_reason(rabbit_url, docker_client):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job("nosuch/image:1", ["echo never"])
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)

            assert final.status == messages_pb2.FAILED
            assert final.reason.startswith(
                "image nosuch/image:1 is not available locally and could not be pulled: "
            ), final.reason
            system = w.tap.texts(job.run_id, messages_pb2.SYSTEM)
            assert system == [
                "[bob] pulling image nosuch/image:1",
                f"[bob] run failed: {final.reason}",
            ]
            assert w.tap.statuses(job.run_id) == [messages_pb2.FAILED]
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())


def test_an_image_name_the_engine_refuses_fails_the_run_rather_than_handing_it_back(
    rabbit_url, docker_client
):
    # The engine answers 400 (invalid reference format): an answer, not an engine that
    # cannot be reached, so the run fails at once instead of going back to the queue.
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = make_job("Not/A:valid::name", ["echo never"])
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)

            assert final.status == messages_pb2.FAILED
            assert final.reason.startswith("could not look up image Not/A:valid::name: ")
            assert "invalid reference format" in final.reason, final.reason
            await no_container_left(docker_client, job.run_id)

    asyncio.run(scenario())
