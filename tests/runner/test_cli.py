"""`python -m runner_svc` as a real process: configuration errors, a step that prints a
million lines in bounded memory, and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bob_common import run_events, topology
from bob_pb import messages_pb2
from runner_svc.cli import RET_CONFIG, RET_OK
from tests.runner.harness import TERMINAL, entities_server, make_job, publish_job, runner_env
from tests.waiting import await_until

LINES = 1_000_000
MAX_RSS_KB = 150 * 1024


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "runner_svc"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_invalid_configuration_exits_with_ret_config(tmp_path):
    for bad in ({"BOB_RUNNER_CAPACITY": "0"}, {"BOB_RUNNER_TYPE": "nosuch"}):
        process = _start(bad, tmp_path / "runner.log")
        assert process.wait(30) == RET_CONFIG, (tmp_path / "runner.log").read_text()


class _Counter:
    """Checks the run's events as they come, keeping counts only (a million lines)."""

    def __init__(self) -> None:
        self.seq = 0
        self.lines = 0
        self.stdout = 0
        self.final: messages_pb2.StatusChanged | None = None
        self.errors: list[str] = []

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        for event in run_events.decode(message):
            self._count(event)

    def _count(self, event: messages_pb2.RunEvent) -> None:
        if event.seq != self.seq + 1:
            self.errors.append(f"seq {event.seq} after {self.seq}")
        self.seq = event.seq
        for line in event.logs.lines:
            if line.line_no != self.lines:
                self.errors.append(f"line_no {line.line_no} where {self.lines} was due")
            if line.stream == messages_pb2.STDOUT and line.text != str(self.stdout + 1):
                self.errors.append(f"line {line.text!r} where {self.stdout + 1} was due")
            self.stdout += line.stream == messages_pb2.STDOUT
            self.lines += 1
        if event.HasField("status") and event.status.status in TERMINAL:
            self.final = event.status


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_million_lines_in_bounded_memory_then_sigterm_stops_cleanly(
    rabbit_url, test_image, tmp_path
):
    log = tmp_path / "runner.log"

    async def scenario() -> None:
        async with entities_server() as (addr, _):
            connection = await aio_pika.connect(rabbit_url)
            async with connection:
                channel = await connection.channel()
                counter = _Counter()
                queue = await channel.declare_queue(exclusive=True)
                await queue.bind(await topology.declare_events(channel), routing_key="run.#")
                await queue.consume(counter.on_message, no_ack=True)

                process = _start(runner_env(rabbit_url, addr), log)
                try:
                    # Given a step that prints a million lines
                    job = make_job(test_image, [f"seq 1 {LINES}"])
                    await publish_job(channel, job)

                    # When it has run
                    async def ended() -> bool:
                        assert process.poll() is None, log.read_text()
                        return counter.final is not None

                    await await_until(ended, timeout=150, what="the run to end")

                    # Then every line arrived, in order, and the runner stayed small
                    assert counter.final.status == messages_pb2.PASSED, log.read_text()
                    assert counter.errors[:5] == []
                    assert counter.stdout == LINES
                    assert _peak_rss_kb(process.pid) <= MAX_RSS_KB

                    # And SIGTERM stops it cleanly
                    process.send_signal(signal.SIGTERM)
                    assert await asyncio.to_thread(process.wait, 30) == RET_OK
                finally:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
        assert "stopped" in log.read_text()

    asyncio.run(scenario())
