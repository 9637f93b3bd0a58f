"""What the fault-injection tests share: short leases, the figures each test prints, a
wait that counts instead of failing, a job delivered twice, and a look at the queues and
at the containers Docker made. (The broker restart runs on a node of the test's own:
tests/support/rabbit_node.py.)"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import aio_pika

from bob_common import topology
from runner_svc.executors.docker.executor import LABEL_RUN
from tests.e2e.runner_cluster import TERMINAL, Bob

IMAGE = "bob-test/busybox:latest"
GROUP = "faults"

# Short leases so a lost runner is noticed in seconds; every wait below is on a condition
# with a generous deadline, never a timed assertion.
FAST = {
    "BOB_LEASE_S": "3",
    "BOB_MAX_ATTEMPTS": "3",
    "BOB_SWEEP_S": "0.5",
    "BOB_HEARTBEAT_S": "0.5",
    "BOB_RUNNER_DRAIN_S": "5",
    "BOB_RUNNER_ORPHAN_SWEEP_S": "1",
    "BOB_RUNNER_STOP_GRACE_S": "2",
    "BOB_LOG_LEVEL": "INFO",
}


# Every figure line shown in this session: the terminal summary repeats them, since
# pytest hides what a passing test prints.
SHOWN: list[str] = []


@dataclass
class Figures:
    """The counts a fault test prints, so a reader sees the figures and not only a pass."""

    scenario: str
    accepted: int = 0
    terminal: int = 0
    passed: int = 0
    lost: int = 0
    duplicated: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of_one_run(
        cls, scenario: str, status: str, *, duplicated: int, extra: dict[str, object]
    ) -> Figures:
        """The figures of a test that starts one run and reads its final `status`."""
        return cls(
            scenario,
            accepted=1,
            terminal=int(status in TERMINAL),
            passed=int(status == "passed"),
            lost=int(status not in TERMINAL),
            duplicated=duplicated,
            extra=extra,
        )

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.extra.items())
        return (
            f"faults[{self.scenario}]: accepted={self.accepted} terminal={self.terminal} "
            f"passed={self.passed} lost={self.lost} duplicated={self.duplicated}{extra}"
        )

    def show(self) -> str:
        print(f"\n{self}", flush=True)
        SHOWN.append(str(self))
        return str(self)


# --- runs, over HTTP, tolerant of a backend that is away for a while -----------------


def statuses(bob: Bob, name: str, group: str = GROUP) -> dict[str, str]:
    """Status of every run of the pipeline; {} while the API cannot answer."""
    try:
        r = bob.http.get(f"/pipelines/groups/{group}/names/{name}/runs")
    except OSError:
        return {}
    if r.status_code != 200:
        return {}
    return {run["run-id"]: run["status"] for run in r.json()["message"]}


def settle(
    bob: Bob, runs: dict[str, str], *, timeout: float, interval: float = 0.5
) -> dict[str, str]:
    """Waits until every run (id -> pipeline name) is terminal or the deadline passes,
    and returns the last status seen of each ("unknown" if never seen): a run still not
    terminal at the end counts as lost, which the caller asserts on with its figures."""
    last = {run_id: "unknown" for run_id in runs}
    names = set(runs.values())
    deadline = time.monotonic() + timeout
    while True:
        for name in names:
            for run_id, status in statuses(bob, name).items():
                if run_id in last:
                    last[run_id] = status
        if all(status in TERMINAL for status in last.values()):
            return last
        if time.monotonic() > deadline:
            return last
        time.sleep(interval)


def detail(bob: Bob, name: str, run_id: str, group: str = GROUP) -> dict | None:
    """The run's detail, or None while the API cannot answer."""
    try:
        r = bob.http.get(f"/pipelines/groups/{group}/names/{name}/runs/{run_id}")
    except OSError:
        return None
    return r.json()["message"] if r.status_code == 200 else None


def all_log_lines(bob: Bob, run_id: str, page: int = 10_000) -> list[str]:
    """The whole log of a run, page by page (the API serves 10,000 lines at most)."""
    lines: list[str] = []
    while True:
        r = bob.http.get(f"/pipelines/logs/runs/{run_id}/offset/{len(lines)}/lines/{page}")
        assert r.status_code == 200, r.text
        got = r.json()["message"]
        lines.extend(got)
        if len(got) < page:
            return lines


def output_of(lines: Iterable[str]) -> list[str]:
    """The lines the steps printed, without Bob's own."""
    return [line for line in lines if not line.startswith("[bob]")]


def start_all(bob: Bob, name: str, count: int) -> list[str]:
    return [bob.start(GROUP, name) for _ in range(count)]


def pipeline(bob: Bob, name: str, *cmds: str) -> None:
    bob.create_pipeline(GROUP, name, {"image": IMAGE, "steps": [{"cmd": c} for c in cmds]})


# --- Docker -------------------------------------------------------------------------


class ContainerWatch:
    """Counts the build containers Docker makes for each run while it watches: one per
    execution of a run, whichever runner made it, started for the run (created with its
    label) or a spare it took (renamed after it). Docker's events are streamed live (the
    engine keeps only the last few hundred for later)."""

    def __init__(self, docker_client) -> None:
        self.created: Counter[str] = Counter()
        # Subscribed once this returns: no container made afterwards is missed.
        self._stream = docker_client.events(
            decode=True, filters={"type": "container", "event": ["create", "rename"]}
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name="docker-events")
        self._reader.start()

    def _read(self) -> None:
        for event in self._stream:
            attributes = event.get("Actor", {}).get("Attributes", {})
            if event.get("Action") == "rename":
                found = re.match(r"^/?bob-(r-[0-9a-f-]+)-a\d+$", attributes.get("name", ""))
                run_id = found.group(1) if found else None
            else:
                run_id = attributes.get(LABEL_RUN)
            if run_id:
                self.created[run_id] += 1

    def close(self) -> None:
        self._stream.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> ContainerWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# --- RabbitMQ -----------------------------------------------------------------------


def rabbitmqctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout
    )


def queue_depth(queue_url: str, queue: str) -> int | None:
    """Messages ready in the queue, or None while the broker cannot be reached."""

    async def depth() -> int:
        connection = await aio_pika.connect(queue_url, timeout=5)
        async with connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return declared.declaration_result.message_count

    try:
        return asyncio.run(depth())
    except (TimeoutError, aio_pika.exceptions.AMQPError, OSError):
        return None


def deliver_twice(queue_url: str, runner_type: str = "docker") -> bytes:
    """Takes the one job waiting in the runner type's queue and puts it back twice, body
    and properties unchanged, so that the queue holds two deliveries of the same job (what
    a publisher's retry or a broker's redelivery produces). Returns the job's body."""

    async def copy() -> bytes:
        connection = await aio_pika.connect(queue_url, timeout=5)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue(topology.job_queue_name(runner_type), passive=True)
            original = await queue.get(no_ack=False, timeout=5)
            assert original is not None, "no job in the queue to deliver twice"
            for _ in range(2):
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body=original.body,
                        content_type=original.content_type,
                        type=original.type,
                        message_id=original.message_id,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        headers={
                            k: v
                            for k, v in (original.headers or {}).items()
                            if not k.startswith("x-")
                        },
                    ),
                    routing_key=queue.name,
                )
            # Acked only once both copies are confirmed: the job is never missing.
            await original.ack()
            return original.body

    return asyncio.run(copy())
