"""Unbounded logs (issue 10): a step that prints 50 MB, a line of 200 KiB of 3-byte
characters, and log events that would outgrow the broker's message limit, on a real
cluster; then the capping logic itself (runner_svc/reporting/logcaps.py) without one.

The cluster runs with small caps (BOB_RUN_LOG_MAX_BYTES, BOB_EVENT_MAX_BYTES) so the test
stays fast; the defaults are checked against the settings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import aio_pika
import pytest

from bob_common import run_events, topology
from bob_common.config import (
    EVENT_MAX_BYTES,
    LOG_LINE_MAX_BYTES,
    RUN_LOG_MAX_BYTES,
    ConfigError,
    EntitiesSettings,
    RunnerSettings,
)
from bob_common.log_markers import SYSTEM_PREFIX
from bob_pb import messages_pb2
from entities_svc.events import prefetch
from runner_svc.reporting import logcaps
from runner_svc.reporting.logsink import LineSplitter, LogSink
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id

IMAGE = "bob-test/busybox:latest"
RUN_CAP = 2 * 1024 * 1024
EVENT_CAP = 4 * LOG_LINE_MAX_BYTES  # the smallest the default line cap allows
PRINTED = 50_000_000
# 100 characters and a newline a line: a 2 MiB cap stores ~20,000 lines, not a million.
LINE_100 = "0123456789" * 10
EURO = "€"


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    runners = [{"BOB_RUNNER_ID": runner_id("logs"), "BOB_RUN_LOG_MAX_BYTES": str(RUN_CAP)}]
    env = {"BOB_EVENT_MAX_BYTES": str(EVENT_CAP)}
    with runner_cluster(tmp_path_factory.mktemp("logs"), runners, env=env) as bob:
        yield bob


def _run(bob: Bob, steps: list[str], timeout: float = 240) -> tuple[str, str]:
    name = f"logs-{uuid.uuid4().hex[:8]}"
    bob.create_pipeline("limits", name, {"image": IMAGE, "steps": [{"cmd": c} for c in steps]})
    run_id = bob.start("limits", name)
    return run_id, bob.wait_terminal(run_id, timeout=timeout)


def _all_lines(bob: Bob, run_id: str) -> list[str]:
    lines: list[str] = []
    while True:
        r = bob.http.get(f"/pipelines/logs/runs/{run_id}/offset/{len(lines)}/lines/10000")
        assert r.status_code == 200, r.text
        page = r.json()["message"]
        if not page:
            return lines
        lines += page


def _step_bytes(lines: list[str]) -> int:
    """Bytes of step output as the run's budget counts them (UTF-8, and a newline each)."""
    return sum(len(t.encode()) + 1 for t in lines if not t.startswith(SYSTEM_PREFIX))


def test_a_50_mb_log_is_capped_with_one_marker_and_the_run_passes(bob):
    run_id, status = _run(
        bob, [f"yes {LINE_100} | head -c {PRINTED}", "echo after-the-cap", "true"]
    )
    lines = _all_lines(bob, run_id)
    markers = [i for i, t in enumerate(lines) if "BOB_RUN_LOG_MAX_BYTES" in t]
    stored = _step_bytes(lines)
    print(
        f"limits[logs]: printed={PRINTED} stored={stored} cap={RUN_CAP} "
        f"markers={len(markers)} lines={len(lines)} status={status}"
    )
    assert status == "passed", lines[-5:]
    assert len(markers) == 1
    assert lines[markers[0]].startswith(SYSTEM_PREFIX)
    assert RUN_CAP - 200 < stored <= RUN_CAP
    assert all(t == LINE_100 for t in lines if not t.startswith(SYSTEM_PREFIX))
    # The run went on after the cap: its later steps ran and their `[bob]` lines are there,
    # their output is not.
    after = lines[markers[0] + 1 :]
    assert any(t.startswith(SYSTEM_PREFIX + "step 3/3") for t in after), after
    assert after[-1] == SYSTEM_PREFIX + "run passed"
    assert "after-the-cap" not in after


def test_a_200_kib_line_of_3_byte_characters_is_stored_in_lines_within_the_cap(bob):
    count = 200 * 1024 // 3 + 1
    # printf's octal escape, so the step's text is plain ASCII.
    run_id, status = _run(
        bob, [f"yes \"$(printf '\\342\\202\\254')\" | head -n {count} | tr -d '\\n'; echo"]
    )
    lines = [t for t in _all_lines(bob, run_id) if not t.startswith(SYSTEM_PREFIX)]
    sizes = [len(t.encode()) for t in lines]
    suffix = logcaps.cut_suffix(LOG_LINE_MAX_BYTES)
    print(
        f"limits[logs]: printed={count * 3} bytes in one line, stored lines={len(lines)} "
        f"largest={max(sizes)} cap={LOG_LINE_MAX_BYTES}"
    )
    assert status == "passed"
    assert max(sizes) <= LOG_LINE_MAX_BYTES
    assert all(t.endswith(suffix) for t in lines[:-1]) and not lines[-1].endswith(suffix)
    # Cut between characters: nothing lost, nothing replaced.
    assert "".join(t.removesuffix(suffix) for t in lines) == EURO * count


async def _tap(queue_url: str, name: str) -> None:
    """A queue of ours that gets every log event the runners publish (alone, or in a
    batch with other events: bob_common/run_events.py)."""
    async with await aio_pika.connect(queue_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, auto_delete=False)
        for kind in ("logs", run_events.BATCH):
            await queue.bind(topology.EVENTS_EXCHANGE, routing_key=f"run.*.{kind}")


async def _drain(queue_url: str, name: str) -> list[tuple[bytes, list[messages_pb2.RunEvent]]]:
    """Each message's body, with its events."""
    async with await aio_pika.connect(queue_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, auto_delete=False)
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append((message.body, run_events.decode(message)))
        await queue.delete(if_unused=False, if_empty=False)
        return found


def test_log_events_stay_within_the_event_cap(bob):
    tap = f"test-tap-{uuid.uuid4().hex[:8]}"
    asyncio.run(_tap(bob.queue_url, tap))
    # 30 lines of 60,000 bytes (within the run's cap): 1.8 MB, 7 x the event cap.
    step = "yes \"$(yes x | head -n 60000 | tr -d '\\n')\" | head -n 30"
    run_id, status = _run(bob, [step])
    messages = _drain_run(asyncio.run(_drain(bob.queue_url, tap)), run_id)
    bodies = [body for body, _ in messages]
    lines = sum(len(e.logs.lines) for _, events in messages for e in events)
    largest = max(len(b) for b in bodies)
    print(
        f"limits[logs]: log events={len(bodies)} lines={lines} largest={largest} bound={EVENT_CAP}"
    )
    assert status == "passed"
    assert largest <= EVENT_CAP
    # Every line came in these events, and the step's 30 took several.
    stored = _all_lines(bob, run_id)
    assert lines == len(stored)
    assert [len(t) for t in stored if not t.startswith(SYSTEM_PREFIX)] == [60_000] * 30
    assert len(bodies) >= 1_800_000 // EVENT_CAP


def _drain_run(
    messages: list[tuple[bytes, list[messages_pb2.RunEvent]]], run_id: str
) -> list[tuple[bytes, list[messages_pb2.RunEvent]]]:
    return [(body, events) for body, events in messages if events[0].run_id == run_id]


# --- the capping logic, without a cluster --------------------------------------------


def test_the_defaults():
    runner = RunnerSettings.from_env({})
    assert runner.run_log_max_bytes == RUN_LOG_MAX_BYTES == 64 * 1024 * 1024
    assert runner.log_line_max_bytes == LOG_LINE_MAX_BYTES == 64 * 1024
    assert runner.common.event_max_bytes == EVENT_MAX_BYTES == 1024 * 1024
    entities = EntitiesSettings.from_env({})
    count = prefetch(
        entities.event_batch_max,
        entities.common.event_max_bytes,
        entities.events_inflight_max_bytes,
    )
    worst = count * entities.common.event_max_bytes
    print(f"limits[logs]: entities prefetch={count} worst case={worst} bytes")
    assert worst <= entities.events_inflight_max_bytes == 128 * 1024 * 1024
    # Smaller events let more in, up to the consumer's own bound.
    assert prefetch(500, 64 * 1024, 128 * 1024 * 1024) == 200
    assert prefetch(500, 16 * 1024 * 1024, 16 * 1024 * 1024) == 1


def test_a_line_cap_beyond_what_an_event_holds_is_refused():
    with pytest.raises(ConfigError, match="BOB_LOG_LINE_MAX_BYTES"):
        RunnerSettings.from_env({"BOB_LOG_LINE_MAX_BYTES": str(EVENT_MAX_BYTES)})
    with pytest.raises(ConfigError, match="BOB_EVENTS_INFLIGHT_MAX_BYTES"):
        EntitiesSettings.from_env({"BOB_EVENTS_INFLIGHT_MAX_BYTES": "1000"})


def test_the_line_cap_is_measured_after_decoding():
    cap = 1024
    splitter = LineSplitter(cap)
    # Invalid bytes decode to U+FFFD, 3 bytes each: before, this stored 3 x the cap.
    bad = splitter.feed(b"\xff" * cap + b"\n")
    euro = splitter.feed((EURO * 1000).encode() + b"\n")
    assert all(len(t.encode()) <= cap for t in bad + euro)
    suffix = logcaps.cut_suffix(cap)
    assert bad[0].endswith(suffix)
    assert "".join(t.removesuffix(suffix) for t in euro) == EURO * 1000
    # A line of exactly the cap is not cut.
    assert splitter.feed(b"y" * cap + b"\n") == ["y" * cap]


def test_an_endless_line_of_3_byte_characters_is_cut_between_characters():
    cap = 1024
    splitter = LineSplitter(cap)
    data = (EURO * 5000).encode()
    lines = [t for i in range(0, len(data), 1000) for t in splitter.feed(data[i : i + 1000])]
    lines += splitter.flush()
    suffix = logcaps.cut_suffix(cap)
    assert all(len(t.encode()) <= cap for t in lines)
    assert "".join(t.removesuffix(suffix) for t in lines) == EURO * 5000


def test_the_budget_keeps_what_fits_then_one_marker_then_nothing():
    budget = logcaps.LogBudget(100)
    assert budget.take([(1, "x" * 49)] * 2) == [(1, "x" * 49)] * 2  # 2 x (49 + newline)
    kept = budget.take([(1, ""), (1, "more")])
    assert kept == [(3, SYSTEM_PREFIX + logcaps.marker_text(100))]
    assert budget.exhausted and budget.used == 100
    assert budget.take([(1, "")] * 10) == []
    assert budget.dropped_lines == 12


def test_a_sink_past_the_budget_drops_the_output_and_marks_it_once():
    async def scenario() -> list[tuple[int, str]]:
        budget = logcaps.LogBudget(10_000)
        sink = LogSink(asyncio.get_running_loop(), batch_lines=100, flush_s=5, budget=budget)

        def reader() -> None:
            for _ in range(1000):
                sink.write(messages_pb2.STDOUT, b"y\n" * 1000)
            sink.close()

        thread = asyncio.to_thread(reader)
        collected = [line async for batch in _batches(sink, thread) for line in batch]
        return collected

    lines = asyncio.run(scenario())
    outputs = [t for _, t in lines if not t.startswith(SYSTEM_PREFIX)]
    markers = [t for _, t in lines if t.startswith(SYSTEM_PREFIX)]
    assert len(outputs) == 5000 and len(markers) == 1 and lines[-1][1] == markers[0]


async def _batches(sink: LogSink, writer):
    task = asyncio.ensure_future(writer)
    async for batch in sink.batches():
        yield batch
    await task


def test_event_chunks_stay_within_the_event_size():
    cap = 64 * 1024
    lines = [(1, EURO * (i * 37 % 5000)) for i in range(300)] + [(3, "")] * 2000
    chunks = list(logcaps.event_chunks(lines, cap))
    assert [line for chunk in chunks for line in chunk] == lines
    for n, chunk in enumerate(chunks):
        event = messages_pb2.RunEvent(
            run_id="r" * 64, attempt=2**31, seq=2**62, runner_id="x" * 128, at_ms=2**62
        )
        for i, (stream, text) in enumerate(chunk):
            event.logs.lines.add(line_no=2**62 + i, text=text, stream=stream)
        assert event.ByteSize() <= cap - 1024, n
    assert len(chunks) > 1
