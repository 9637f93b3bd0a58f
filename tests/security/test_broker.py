"""Attacks through the broker, against real RabbitMQ and the services as real processes
started as `make run` starts them: each with a broker user of its own.

- Run events count only from the runner holding the run's claim: a forged event (made-up
  or missing claim MAC), or one of an attempt whose claim is over, changes nothing.
- Events out of sequence are held until the gap fills, never applied before it; held too
  long, they are refused.
- Each service's broker user can do its part and nothing else, and no service is guest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aio_pika
import aiormq.exceptions
import grpc
import pytest
from google.protobuf import empty_pb2

from bob_common import amqp, broker_users, claim_proof, topology
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2, pipeline_pb2
from devcluster import broker as make_run_broker
from entities_svc.service import EntitiesService
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id
from tests.entities.support import make_settings
from tests.waiting import await_until, wait_until

E = entities_pb2
M = messages_pb2
# A runner type no runner serves: its runs stay pending until the test claims them, as
# the runner it plays would.
GHOST = "ghost"


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    runners = [{"BOB_RUNNER_ID": runner_id("broker")}]
    with runner_cluster(tmp_path_factory.mktemp("broker"), runners, service_users=True) as b:
        yield b


def _stub(bob: Bob, identity: str = "api") -> entities_pb2_grpc.EntitiesStub:
    """Entities over the cluster's mutual TLS, as `identity`: the API's, or the runner
    the test plays (a runner may claim, renew and release only as itself)."""
    return entities_pb2_grpc.EntitiesStub(bob.cluster.entities_channel(identity))


def _pipeline(bob: Bob, image: str, *cmds: str) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    bob.create_pipeline("sec", name, {"image": image, "steps": [{"cmd": c} for c in cmds]})
    return name


def _ghost_run(bob: Bob, image: str) -> str:
    """A pending run of a runner type no real runner serves (the test plays its runner,
    whose lease renewal makes the type known), started over gRPC as the API does."""
    ghost = _stub(bob, "runner/ghost-1")
    ghost.RenewLeases(E.RenewLeasesRequest(runner_id="ghost-1", runner_type=GHOST, capacity=1))
    name = _pipeline(bob, image, "true")
    api = _stub(bob)
    # Runner types are an allow-list: the admin allows the ghost type for this pipeline.
    api.SetPipelineRunnerTypes(
        E.SetPipelineRunnerTypesRequest(group="sec", name=name, runner_types=[GHOST])
    )
    job = api.CreateRun(E.CreateRunRequest(group="sec", name=name, runner_type=GHOST))
    return job.run_id


def _event(run_id: str, seq: int, attempt: int = 1, **body) -> M.RunEvent:
    return M.RunEvent(run_id=run_id, attempt=attempt, seq=seq, runner_id="attacker", **body)


def _status(status: int) -> dict:
    return {"status": M.StatusChanged(status=status)}


def _line(line_no: int, text: str) -> dict:
    return {"logs": M.LogBatch(lines=[M.LogLine(line_no=line_no, text=text, stream=M.STDOUT)])}


async def _publish(url: str, events: list[tuple[M.RunEvent, bytes | None]]) -> None:
    """Publishes each event to bob.events (signed with the key, when one is given), as
    the holder of `url`'s broker user can."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.EVENTS_EXCHANGE, ensure=False)
        for event, key in events:
            message = amqp.encode(event)
            if key is not None:
                message.headers[claim_proof.HEADER] = claim_proof.mac(key, message.body)
            kind = event.WhichOneof("body")
            await exchange.publish(message, routing_key=topology.run_event_key(event.run_id, kind))


def publish(bob: Bob, *events: tuple[M.RunEvent, bytes | None]) -> None:
    # With the runner's own broker user: even a broker user that may publish events
    # cannot forge them.
    asyncio.run(_publish(bob.queue_urls["runner"], list(events)))


def _refused(bob: Bob) -> int:
    return _stub(bob).GetStats(empty_pb2.Empty()).events_refused


def _wait_refused(bob: Bob, at_least: int) -> None:
    wait_until(
        lambda: _refused(bob) >= at_least,
        what=f"entities to count {at_least} refused events",
        describe=bob.logs_tail,
    )


def _entities_log(bob: Bob) -> str:
    return "\n".join(bob.cluster.entities.lines)


# --- events only from the claim holder ----------------------------------------------


def test_a_run_still_passes_end_to_end_with_per_service_broker_users(bob, test_image):
    name = _pipeline(bob, test_image, "echo built")

    run_id = bob.start("sec", name)

    assert bob.wait_terminal(run_id) == "passed", bob.logs_tail()
    assert "built" in bob.log_lines(run_id)


def test_forged_events_do_not_pass_a_running_run_nor_write_its_log(bob, test_image):
    # Given a run executing a long step on the real runner
    name = _pipeline(bob, test_image, "sleep 60")
    run_id = bob.start("sec", name)
    bob.wait_status(run_id, "running")
    before = _refused(bob)

    # When an attacker publishes PASSED and a log line at every plausible seq, with a
    # made-up key and without any MAC
    made_up = secrets.token_bytes(32)
    forged = [
        (_event(run_id, seq, **body), key)
        for seq in range(1, 30)
        for body in (_status(M.PASSED), _line(10_000 + seq, "forged: all good"))
        for key in (made_up, None)
    ]
    publish(bob, *forged)

    # Then every one is refused, logged naming the run; the run runs on, its log clean
    _wait_refused(bob, before + len(forged))
    assert bob.status(run_id) == "running"
    assert not [ln for ln in bob.log_lines(run_id) if "forged" in ln]
    assert f"run {run_id}: refused event seq 1 (attempt 1, said to be from attacker)" in (
        _entities_log(bob)
    )
    r = bob.http.post(f"/pipelines/stop/groups/sec/names/{name}/runs/{run_id}")
    assert r.status_code in (200, 202), r.text
    assert bob.wait_terminal(run_id) == "stopped"


def test_the_claim_holders_signed_events_apply_and_a_previous_attempts_are_refused(bob, test_image):
    stub, runner_a, runner_b = (
        _stub(bob),
        _stub(bob, "runner/runner-a"),
        _stub(bob, "runner/runner-b"),
    )
    # Given a run claimed (as a runner would) and its first event applied
    run_id = _ghost_run(bob, test_image)
    first = runner_a.ClaimRun(E.ClaimRunRequest(run_id=run_id, attempt=1, runner_id="runner-a"))
    assert first.claimed and len(first.claim_secret) == claim_proof.SECRET_BYTES
    publish(bob, (_event(run_id, 1, **_line(0, "attempt 1 line")), first.claim_secret))
    wait_until(lambda: "attempt 1 line" in bob.log_lines(run_id), what="attempt 1's line")

    # When the run is handed back and claimed again as attempt 2, with a new secret
    runner_a.ReleaseRun(E.ReleaseRunRequest(run_id=run_id, attempt=1, runner_id="runner-a"))
    second = runner_b.ClaimRun(E.ClaimRunRequest(run_id=run_id, attempt=2, runner_id="runner-b"))
    assert second.claimed and second.claim_secret != first.claim_secret
    before = _refused(bob)
    # ...and the first runner (or whoever kept its secret) reports for either attempt
    publish(
        bob,
        (_event(run_id, 2, **_status(M.PASSED)), first.claim_secret),
        (_event(run_id, 1, attempt=2, **_status(M.PASSED)), first.claim_secret),
    )

    # Then both are refused and the run is still the second claim's, initializing
    _wait_refused(bob, before + 2)
    assert bob.status(run_id) == "initializing"
    # And the second claim's own events apply
    publish(bob, (_event(run_id, 1, attempt=2, **_status(M.RUNNING)), second.claim_secret))
    bob.wait_status(run_id, "running")
    stub.StopRun(E.RunRef(run_id=run_id))


def test_events_out_of_sequence_are_held_until_the_gap_fills(bob, test_image):
    stub = _stub(bob)
    run_id = _ghost_run(bob, test_image)
    runner_a = _stub(bob, "runner/runner-a")
    claim = runner_a.ClaimRun(E.ClaimRunRequest(run_id=run_id, attempt=1, runner_id="runner-a"))
    key = claim.claim_secret

    # Given the claim holder's events 2 and 3 arrive before event 1
    publish(
        bob,
        (_event(run_id, 2, **_line(0, "second")), key),
        (_event(run_id, 3, **_status(M.PASSED)), key),
    )
    # Then neither is applied while 1 is missing (entities has taken them: held)
    wait_until(lambda: "seq 2 is ahead of 0" in _entities_log(bob), what="the gap noticed")
    assert bob.status(run_id) == "initializing"
    assert bob.log_lines(run_id) == []

    # When event 1 comes, all three apply, in order
    publish(bob, (_event(run_id, 1, **_status(M.RUNNING)), key))
    assert bob.wait_terminal(run_id) == "passed"
    assert bob.log_lines(run_id) == ["second"]
    run = stub.GetRun(E.RunRef(run_id=run_id))
    assert run.started_at_ms > 0 and run.completed_at_ms > 0


def test_an_event_whose_gap_never_fills_is_refused_and_dead_lettered(db_url, rabbit_url):
    async def main() -> None:
        async with _entities(db_url, rabbit_url) as (service, stub, channel):
            service.consumer.hold_s = 0.5
            run_id, key = await _claimed_run(stub)
            dead = await channel.declare_queue(topology.DEAD_LETTER_QUEUE, passive=True)
            # Given event 5 of the claim holder, and never 1 to 4
            await _publish(rabbit_url, [(_event(run_id, 5, **_status(M.RUNNING)), key)])

            # Then it is refused once held past hold_s: dead-lettered, never applied
            await await_until(lambda: _count(service), what="the held event refused")
            await await_until(
                lambda: dead.get(no_ack=True, fail=False), what="the event in bob.dead"
            )
            run = await stub.GetRun(E.RunRef(run_id=run_id))
            assert run.status == M.INITIALIZING
            # And the run's events still apply once they come in sequence
            await _publish(rabbit_url, [(_event(run_id, 1, **_status(M.RUNNING)), key)])

            async def running() -> bool:
                run = await stub.GetRun(E.RunRef(run_id=run_id))
                return run.status == M.RUNNING

            await await_until(running, what="the run running")

    asyncio.run(main())


def test_events_beyond_what_may_be_held_are_refused_never_applied_out_of_turn(db_url, rabbit_url):
    async def main() -> None:
        async with _entities(db_url, rabbit_url) as (service, stub, channel):
            service.consumer.max_held = 1
            run_id, key = await _claimed_run(stub)
            # Given events 3 and 4 arrive before 1 and 2: 3 is held, and 4, one too many,
            # is refused
            await _publish(
                rabbit_url,
                [
                    (_event(run_id, 3, **_line(1, "third")), key),
                    (_event(run_id, 4, **_status(M.PASSED)), key),
                ],
            )
            await await_until(lambda: _count(service), what="the second early event refused")
            # When 1 and 2 come
            await _publish(
                rabbit_url,
                [
                    (_event(run_id, 1, **_status(M.RUNNING)), key),
                    (_event(run_id, 2, **_line(0, "first")), key),
                ],
            )

            # Then 1, 2 and the held 3 apply in order, and the refused 4 never does
            async def logged() -> list[str]:
                found = await stub.GetLogs(E.GetLogsRequest(run_id=run_id, limit=10))
                return list(found.lines) if len(found.lines) == 2 else []

            assert await await_until(logged, what="both lines") == ["first", "third"]
            run = await stub.GetRun(E.RunRef(run_id=run_id))
            assert run.status == M.RUNNING

    asyncio.run(main())


async def _count(service: EntitiesService) -> bool:
    return service.consumer.events_refused == 1


@contextlib.asynccontextmanager
async def _entities(db_url: str, rabbit_url: str) -> AsyncIterator[tuple]:
    service = EntitiesService(make_settings(db_url, rabbit_url), grace_s=1)
    await service.start()
    try:
        await asyncio.wait_for(service.consumer.connected.wait(), 30)
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as grpc_channel,
            await aio_pika.connect(rabbit_url) as connection,
        ):
            channel = await connection.channel()
            yield service, entities_pb2_grpc.EntitiesStub(grpc_channel), channel
    finally:
        await service.stop()


async def _claimed_run(stub: entities_pb2_grpc.EntitiesStub) -> tuple[str, bytes]:
    pipeline = pipeline_pb2.Pipeline(image="busybox:musl", steps=[pipeline_pb2.Step(cmd="true")])
    await stub.RenewLeases(E.RenewLeasesRequest(runner_id="r", runner_type=GHOST, capacity=1))
    await stub.PutPipeline(E.PutPipelineRequest(group="sec", name="gap", pipeline=pipeline))
    await stub.SetPipelineRunnerTypes(
        E.SetPipelineRunnerTypesRequest(group="sec", name="gap", runner_types=[GHOST])
    )
    job = await stub.CreateRun(E.CreateRunRequest(group="sec", name="gap", runner_type=GHOST))
    claim = await stub.ClaimRun(E.ClaimRunRequest(run_id=job.run_id, attempt=1, runner_id="r"))
    return job.run_id, claim.claim_secret


# --- per-service broker users -------------------------------------------------------


async def _is_refused(url: str, attempt: Callable[[aio_pika.abc.AbstractChannel], Awaitable]):
    """The broker's answer to `attempt` on a fresh channel of `url`'s user: True for
    ACCESS_REFUSED, else what it returned."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            return await attempt(channel)
        except aiormq.exceptions.ChannelAccessRefused:
            return True


def refused(url: str, attempt: Callable[[aio_pika.abc.AbstractChannel], Awaitable]) -> object:
    return asyncio.run(_is_refused(url, attempt))


async def _consume(channel, name: str) -> None:
    async def on_message(message) -> None:
        await message.reject(requeue=True)

    queue = await channel.get_queue(name, ensure=False)
    await queue.consume(on_message)


async def _get(channel, name: str) -> object:
    queue = await channel.get_queue(name, ensure=False)
    return await queue.get(fail=False)


def test_the_runner_user_cannot_declare_delete_or_consume_what_is_not_its_own(bob):
    url = bob.queue_urls["runner"]
    jobs = topology.job_queue_name("docker")
    attacks = {
        "declare a queue of its choosing": lambda ch: ch.declare_queue("bob.mine", durable=True),
        "declare the shell jobs queue": lambda ch: ch.declare_queue(
            topology.job_queue_name("shell"), durable=True
        ),
        "delete entities' events queue": lambda ch: ch.queue_delete(topology.ENTITIES_EVENTS_QUEUE),
        "delete the events exchange": lambda ch: ch.exchange_delete(topology.EVENTS_EXCHANGE),
        "consume entities' events": lambda ch: _consume(ch, topology.ENTITIES_EVENTS_QUEUE),
        "consume another type's jobs": lambda ch: _consume(ch, topology.job_queue_name("shell")),
        "read the errors": lambda ch: _get(ch, topology.ERRORS_QUEUE),
        "bind a queue of its own to the jobs of all types": lambda ch: _bind_own(
            ch, topology.JOBS_EXCHANGE, "shell"
        ),
        "bind a queue of its own to everyone's events": lambda ch: _bind_own(
            ch, topology.EVENTS_EXCHANGE, "run.#"
        ),
        "publish to any queue through the default exchange": lambda ch: ch.default_exchange.publish(
            aio_pika.Message(b"x"), routing_key=jobs
        ),
        "publish a job": lambda ch: _publish_to(ch, topology.JOBS_EXCHANGE, "shell"),
        "publish a control command": lambda ch: _publish_to(ch, topology.CONTROL_EXCHANGE, ""),
    }

    answers = {what: refused(url, attack) for what, attack in attacks.items()}

    assert answers == dict.fromkeys(attacks, True)
    # While its own part works: taking from its job queue
    assert refused(url, lambda ch: _get(ch, jobs)) is None


def test_the_api_user_reads_the_errors_and_nothing_else(bob):
    url = bob.queue_urls["api"]
    attacks = {
        "consume jobs": lambda ch: _consume(ch, topology.job_queue_name("docker")),
        "consume entities' events": lambda ch: _consume(ch, topology.ENTITIES_EVENTS_QUEUE),
        "declare a queue": lambda ch: ch.declare_queue("bob.mine"),
        "publish a job": lambda ch: _publish_to(ch, topology.JOBS_EXCHANGE, "docker"),
        "publish an event": lambda ch: _publish_to(ch, topology.EVENTS_EXCHANGE, "run.x.status"),
    }

    answers = {what: refused(url, attack) for what, attack in attacks.items()}

    assert answers == dict.fromkeys(attacks, True)
    assert refused(url, lambda ch: _get(ch, topology.ERRORS_QUEUE)) is not True
    r = bob.http.get("/error")
    assert r.status_code in (200, 204), r.text


async def _bind_own(channel, exchange: str, key: str) -> None:
    # A queue it may declare (a control queue), which it then tries to bind elsewhere.
    name = topology.control_queue_name(f"evil-{uuid.uuid4().hex[:6]}")
    queue = await channel.declare_queue(name, exclusive=True)
    await queue.bind(await channel.get_exchange(exchange, ensure=False), routing_key=key)


async def _publish_to(channel, exchange: str, key: str) -> None:
    # The channel confirms publishes, so the broker's refusal comes back to the call.
    target = await channel.get_exchange(exchange, ensure=False)
    await target.publish(aio_pika.Message(b"x"), routing_key=key)


def _connections(vhost: str) -> list[tuple[str, str]]:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "user", "vhost", "name", "--formatter", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = json.loads(listed.stdout or "[]")
    return sorted({(row["user"], row["vhost"]) for row in rows if row["vhost"] == vhost})


def test_no_service_is_guest_each_has_its_own_user(bob):
    vhost = bob.queue_url.rsplit("/", 1)[1]

    users = {user for user, _ in _connections(vhost)}

    assert users == {f"{vhost}-entities", f"{vhost}-api", f"{vhost}-runner"}
    started = {"entities": bob.cluster.entities, "api": bob.cluster.api}
    started["runner"] = bob.cluster.runners[0]
    for name, service in started.items():
        assert service.env["BOB_QUEUE_URL"] == bob.queue_urls[name]
        assert not service.env["BOB_QUEUE_URL"].startswith("amqp://guest:")


def test_make_runs_users_are_created_once_with_passwords_kept_owner_only(
    rabbitmq_available, tmp_path
):
    vhost = f"bob-sec-{uuid.uuid4().hex[:8]}"
    prefix = f"{vhost}-"
    passwords = tmp_path / "data" / "broker-users.json"
    try:
        # When make run's start-up creates the users, then starts again
        first = make_run_broker.queue_urls({}, vhost=vhost, passwords=passwords, user_prefix=prefix)
        again = make_run_broker.queue_urls({}, vhost=vhost, passwords=passwords, user_prefix=prefix)

        # Then each service has its own URL on the vhost, none guest, the same each time
        assert set(first) == {"entities", "api", "runner", "runner-shell"}
        assert again == first
        assert all("guest" not in url and url.endswith(f"/{vhost}") for url in first.values())
        # And the passwords are random, kept in a file only its owner can read
        kept = json.loads(passwords.read_text())
        assert len(set(kept.values())) == 4 and all(len(p) >= 24 for p in kept.values())
        assert stat.S_IMODE(os.stat(passwords).st_mode) == 0o600
        # And the broker's permissions are the table's
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_permissions", "-p", vhost, "--formatter", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        perms = {row["user"]: row for row in json.loads(listed.stdout)}
        table = broker_users.table(["docker", "shell"])
        for service, want in table.items():
            got = perms[f"{prefix}{service}"]
            assert (got["configure"], got["write"], got["read"]) == (
                want.configure,
                want.write,
                want.read,
            )
        # And an explicit BOB_QUEUE_URL is the operator's choice: nothing is created
        assert make_run_broker.queue_urls({"BOB_QUEUE_URL": "amqp://x"}) is None
    finally:
        broker_users.delete_users(["entities", "api", "runner", "runner-shell"], user_prefix=prefix)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
