"""What the runner tests share: the one stand-in (an entities server that knows the rpcs a
runner calls: ClaimRun, RenewLeases, ReleaseRun, GetRun and the plugin and logger lists),
a tap on bob.events, job and control publishing, a look at the job queue from the
broker's side, and a runner in the test's event loop. Everything else is real: RabbitMQ on
the test's vhost, Docker (or local processes for the shell runner), and plugins as HTTP
servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aio_pika
import grpc
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bob_common import run_events, topology
from bob_common.amqp import encode
from bob_common.config import RunnerSettings
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2, pipeline_pb2
from runner_svc.executors import create_executor
from runner_svc.service import RunnerService
from runner_svc.tuning import Tuning
from tests.support.broker_connections import drop_connection
from tests.support.containers import run_containers
from tests.waiting import await_until

RUNNER_TYPE = "docker"
TERMINAL = {messages_pb2.PASSED, messages_pb2.FAILED, messages_pb2.STOPPED}


# --- the entities stand-in ----------------------------------------------------------


class StandInEntities(entities_pb2_grpc.EntitiesServicer):
    """ClaimRun as entities does it for a pending run: the first claim of a run's attempt
    wins, every later one is refused. RenewLeases answers `orders` (ORDER_RUN by default) or,
    while `renew_error` is set, fails with it; ReleaseRun and GetRun answer from `runs`
    (NOT_FOUND for another). Tests set those, and the registered plugins (name -> URL),
    directly; every request is kept."""

    def __init__(self) -> None:
        self.requests: list[entities_pb2.ClaimRunRequest] = []
        self.providers: dict[str, str] = {}
        self.stores: dict[str, str] = {}
        self.loggers: dict[str, str] = {}
        self.orders: dict[str, int] = {}
        self.renew_error: grpc.StatusCode | None = None
        self.renewals: list[entities_pb2.RenewLeasesRequest] = []
        self.releases: list[entities_pb2.ReleaseRunRequest] = []
        self.runs: dict[str, entities_pb2.Run] = {}
        self.lookups: list[str] = []  # run ids GetRun was asked about
        # Called with each ClaimRun request before it is answered.
        self.on_claim: Callable[[entities_pb2.ClaimRunRequest], None] | None = None

    async def ListResourceProviders(self, request, context):  # noqa: N802
        return _plugins(self.providers)

    async def ListArtifactStores(self, request, context):  # noqa: N802
        return _plugins(self.stores)

    async def ListLoggers(self, request, context):  # noqa: N802
        return _plugins(self.loggers)

    async def ClaimRun(self, request, context):  # noqa: N802 - the rpc's name
        self.requests.append(request)
        if self.on_claim is not None:
            self.on_claim(request)
        if [(r.run_id, r.attempt) for r in self.requests].count(
            (request.run_id, request.attempt)
        ) == 1:
            return entities_pb2.ClaimRunResponse(claimed=True, status=messages_pb2.INITIALIZING)
        return entities_pb2.ClaimRunResponse(
            claimed=False, reason="run is already claimed", status=messages_pb2.RUNNING
        )

    def claims_of(self, run_id: str) -> list[entities_pb2.ClaimRunRequest]:
        return [r for r in self.requests if r.run_id == run_id]

    async def RenewLeases(self, request, context):  # noqa: N802
        self.renewals.append(request)
        if self.renew_error is not None:
            await context.abort(self.renew_error, "the stand-in fails renewals now")
        return entities_pb2.RenewLeasesResponse(
            instructions=[
                entities_pb2.RunInstruction(
                    run_id=r.run_id, order=self.orders.get(r.run_id, entities_pb2.ORDER_RUN)
                )
                for r in request.runs
            ],
            lease_ms=30_000,
        )

    def renewed(self, run_id: str) -> list[entities_pb2.RunAttempt]:
        """Every renewal of this run's lease, in order."""
        return [r for req in self.renewals for r in req.runs if r.run_id == run_id]

    async def ReleaseRun(self, request, context):  # noqa: N802
        self.releases.append(request)
        return self.runs.get(request.run_id, entities_pb2.Run(id=request.run_id))

    async def GetRun(self, request, context):  # noqa: N802
        self.lookups.append(request.run_id)
        if request.run_id not in self.runs:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id}")
        return self.runs[request.run_id]


def _plugins(urls: dict[str, str]) -> entities_pb2.ListPluginsResponse:
    return entities_pb2.ListPluginsResponse(
        plugins=[entities_pb2.Plugin(name=n, url=u) for n, u in urls.items()]
    )


@asynccontextmanager
async def entities_server(port: int = 0) -> AsyncIterator[tuple[str, StandInEntities]]:
    server = grpc.aio.server()
    entities = StandInEntities()
    entities_pb2_grpc.add_EntitiesServicer_to_server(entities, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{bound}", entities
    finally:
        await server.stop(grace=None)


# --- what the runner publishes ------------------------------------------------------


class EventTap:
    """Every RunEvent on bob.events, decoded, in arrival order."""

    def __init__(self) -> None:
        self.events: list[messages_pb2.RunEvent] = []

    async def start(self, channel: AbstractChannel) -> None:
        exchange = await topology.declare_events(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="run.#")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        events = run_events.decode(message)
        # The body's field name is the routing key's kind: status, logs or step; or batch,
        # for several events in one message.
        kind = events[0].WhichOneof("body") if len(events) == 1 else run_events.BATCH
        assert message.routing_key == topology.run_event_key(events[0].run_id, kind)
        self.events.extend(events)

    def of(self, run_id: str) -> list[messages_pb2.RunEvent]:
        return [e for e in self.events if e.run_id == run_id]

    def statuses(self, run_id: str) -> list[int]:
        return [e.status.status for e in self.of(run_id) if e.HasField("status")]

    def steps(self, run_id: str) -> list[messages_pb2.StepFinished]:
        return [e.step for e in self.of(run_id) if e.HasField("step")]

    def lines(self, run_id: str) -> list[messages_pb2.LogLine]:
        return [line for e in self.of(run_id) if e.HasField("logs") for line in e.logs.lines]

    def texts(self, run_id: str, stream: int | None = None) -> list[str]:
        return [ln.text for ln in self.lines(run_id) if stream is None or ln.stream == stream]

    def final(self, run_id: str) -> messages_pb2.StatusChanged | None:
        for event in self.of(run_id):
            if event.HasField("status") and event.status.status in TERMINAL:
                return event.status
        return None

    async def wait_for(
        self, probe: Callable[[], object], what: str, timeout: float = 30.0
    ) -> object:
        async def check() -> object:
            return probe()

        try:
            return await await_until(check, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast events:\n{self.describe()}") from None

    async def terminal(self, run_id: str, timeout: float = 30.0) -> messages_pb2.StatusChanged:
        return await self.wait_for(  # type: ignore[return-value]
            lambda: self.final(run_id), f"run {run_id} to end", timeout
        )

    def describe(self, last: int = 30) -> str:
        return "\n".join(describe(e) for e in self.events[-last:])


def describe(event: messages_pb2.RunEvent) -> str:
    kind = event.WhichOneof("body")
    if kind == "status":
        detail = messages_pb2.RunStatus.Name(event.status.status) + f" {event.status.reason}"
    elif kind == "logs":
        detail = " | ".join(line.text for line in event.logs.lines[:5])
    else:
        detail = f"step {event.step.index} exit {event.step.exit_code}"
    return f"{event.run_id} seq={event.seq} {kind}: {detail}"


# --- what the API server would publish ----------------------------------------------


def make_job(
    image: str,
    steps: Iterable[str | pipeline_pb2.Step],
    *,
    vars: dict[str, str] | None = None,
    run_id: str | None = None,
    attempt: int = 1,
    resources: Iterable[pipeline_pb2.Resource] = (),
    timeout: int = 0,
    runner_type: str = RUNNER_TYPE,
    first_line_no: int = 0,
    logger: str = "",
) -> messages_pb2.Job:
    pipeline = pipeline_pb2.Pipeline(
        image=image, vars=vars or {}, resources=list(resources), timeout=timeout
    )
    for step in steps:
        pipeline.steps.append(pipeline_pb2.Step(cmd=step) if isinstance(step, str) else step)
    return messages_pb2.Job(
        run_id=run_id or f"r-{uuid.uuid4()}",
        group="test",
        name="pipeline",
        pipeline=pipeline,
        runner_type=runner_type,
        attempt=attempt,
        first_line_no=first_line_no,
        logger=logger,
    )


async def publish_job(
    channel: AbstractChannel, job: messages_pb2.Job, max_jobs: int = 10000
) -> None:
    """To the queue of the job's runner type."""
    exchange, _ = await topology.declare_jobs(channel, job.runner_type, max_jobs)
    await exchange.publish(encode(job), routing_key=job.runner_type)


async def send_control(channel: AbstractChannel, run_id: str, action: int) -> None:
    exchange = await topology.declare_control(channel)
    await exchange.publish(
        encode(messages_pb2.Control(run_id=run_id, action=action)), routing_key=""
    )


async def jobs_waiting(channel: AbstractChannel) -> int:
    """Ready (not unacked) jobs in the runner type's queue."""
    queue = await channel.declare_queue(topology.job_queue_name(RUNNER_TYPE), passive=True)
    return queue.declaration_result.message_count


def _rabbitmqctl_json(*args: str) -> list[dict]:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args, "--formatter", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout or "[]")


@dataclass(frozen=True)
class JobQueue:
    """The runner type's queue as the broker sees it."""

    ready: int
    unacked: int
    consumers: int


async def job_queue(rabbit_url: str) -> JobQueue:
    vhost = rabbit_url.rsplit("/", 1)[1]
    rows = await asyncio.to_thread(
        _rabbitmqctl_json,
        "list_queues",
        "-p",
        vhost,
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
    )
    [row] = [r for r in rows if r["name"] == topology.job_queue_name(RUNNER_TYPE)]
    return JobQueue(row["messages_ready"], row["messages_unacknowledged"], row["consumers"])


# --- the runner ---------------------------------------------------------------------


def runner_env(rabbit_url: str, entities_addr: str, **overrides: object) -> dict[str, str]:
    env = {
        "BOB_QUEUE_URL": rabbit_url,
        "BOB_ENTITIES_ADDR": entities_addr,
        "BOB_RUNNER_TYPE": RUNNER_TYPE,
        "BOB_RUNNER_ID": f"test-runner-{uuid.uuid4().hex[:8]}",
        "BOB_RUNNER_CAPACITY": "2",
        "BOB_LOG_FLUSH_S": "0.05",
        "BOB_RUNNER_DRAIN_S": "5",
        "BOB_GRPC_TIMEOUT_S": "2",
    }
    env.update({f"BOB_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


# Quick stops, for tests that wait on them.
TEST_TUNING = Tuning(
    stop_grace_s=2.0, heartbeat_s=0.5, archive_max_bytes=1 << 30, plugin_timeout_s=30.0
)


@asynccontextmanager
async def started_runner(
    settings: RunnerSettings, tuning: Tuning = TEST_TUNING
) -> AsyncIterator[tuple[RunnerService, asyncio.Task[None]]]:
    """A runner started in this event loop, ready or not, and the task running it; shut
    down without waiting for jobs on exit, unless the test already stopped it."""
    service = RunnerService(settings, create_executor(settings), tuning)
    task = asyncio.create_task(service.run(), name=settings.runner_id)
    try:
        yield service, task
    finally:
        if not task.done():
            service.request_shutdown("test over")
            service.request_shutdown("test over")
        await asyncio.wait_for(task, 60)


@asynccontextmanager
async def running_runner(
    settings: RunnerSettings, tuning: Tuning = TEST_TUNING
) -> AsyncIterator[tuple[RunnerService, asyncio.Task[None]]]:
    """started_runner, once it is ready for jobs."""
    async with started_runner(settings, tuning) as (service, task):
        ready = asyncio.create_task(service.ready.wait())
        await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()  # raises why it could not start
        assert service.ready.is_set(), "runner did not get ready within 30 s"
        yield service, task


_ORDER_OF = {
    messages_pb2.STOP: entities_pb2.ORDER_STOP,
    messages_pb2.PAUSE: entities_pb2.ORDER_PAUSE,
    messages_pb2.RESUME: entities_pb2.ORDER_RUN,
}


@dataclass
class World:
    settings: RunnerSettings
    service: RunnerService
    runner: asyncio.Task[None]
    entities: StandInEntities | None
    channel: AbstractChannel
    tap: EventTap
    rabbit_url: str

    async def publish(self, job: messages_pb2.Job) -> None:
        await publish_job(self.channel, job, self.settings.common.queue_max_jobs)

    async def control(self, run_id: str, action: int) -> None:
        """What entities does for a stop or pause: records the wish (so lease renewals
        answer it), then broadcasts the command."""
        if self.entities is not None:
            self.entities.orders[run_id] = _ORDER_OF[action]
        await send_control(self.channel, run_id, action)

    async def job_queue_becomes(self, ready: int, unacked: int, consumers: int) -> None:
        """Waits until the broker shows the job queue so: a quorum queue's figures are
        refreshed on its own tick, so a single look may see an earlier state."""
        want = JobQueue(ready, unacked, consumers)

        async def probe() -> bool:
            return await job_queue(self.rabbit_url) == want

        try:
            await await_until(probe, what=f"the job queue to show {want}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it shows {await job_queue(self.rabbit_url)}") from None

    async def drop_connection(self) -> None:
        """Cuts the runner off the broker for a moment: it reconnects by itself."""
        await drop_connection(self.rabbit_url, f"runner-{self.settings.runner_id}")

    def signal(self) -> None:
        """What SIGTERM (and SIGINT) does to the runner."""
        self.service.request_shutdown("test signal")

    async def stopped(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(asyncio.shield(self.runner), timeout)


@asynccontextmanager
async def world(
    rabbit_url: str,
    *,
    entities_addr: str | None = None,
    tuning: Tuning = TEST_TUNING,
    **settings: object,
) -> AsyncIterator[World]:
    """A tap on the events, a running runner and, unless `entities_addr` says where the
    test will start its own, the stand-in entities. `settings` override the runner's
    BOB_* variables: runner_type="shell" gives a shell runner."""
    async with contextlib.AsyncExitStack() as stack:
        entities = None
        if entities_addr is None:
            entities_addr, entities = await stack.enter_async_context(entities_server())
        connection = await stack.enter_async_context(await aio_pika.connect(rabbit_url))
        channel = await connection.channel()
        tap = EventTap()
        await tap.start(channel)
        env = runner_env(rabbit_url, entities_addr, **settings)
        runner_settings = RunnerSettings.from_env(env)
        service, runner = await stack.enter_async_context(running_runner(runner_settings, tuning))
        yield World(runner_settings, service, runner, entities, channel, tap, rabbit_url)


async def containers_of(docker_client, run_id: str) -> list:
    return await asyncio.to_thread(run_containers, docker_client, run_id)


async def no_container_left(docker_client, run_id: str) -> None:
    """Waits until the run's containers are gone: a run reports its end first and removes
    its workspace right after."""

    async def gone() -> bool:
        return await containers_of(docker_client, run_id) == []

    await await_until(gone, timeout=30, what=f"the containers of {run_id} to be removed")
