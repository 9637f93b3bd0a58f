"""LogSink fed by a reader on the event loop itself (feed/end, as the last step's attach
reads), without Docker: the same batches, the same flush after flush_s, and the same
back-pressure as a reader thread's write/close, by waiting instead of blocking."""

from __future__ import annotations

import asyncio
import time

from bob_pb import messages_pb2
from runner_svc.reporting.logsink import LogSink
from tests.waiting import await_until

OUT, ERR = messages_pb2.STDOUT, messages_pb2.STDERR


def test_batches_from_a_reader_on_the_loop_keep_order_size_and_tails():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=3, flush_s=5)

        async def reader() -> None:
            await sink.feed(OUT, b"par")
            await sink.feed(ERR, b"err 1\nerr")
            await sink.feed(OUT, b"tial\n" + b"".join(b"%d\n" % i for i in range(5)))
            await sink.feed(OUT, b"no newline")
            await sink.end()

        reading = asyncio.ensure_future(reader())
        result = [batch async for batch in sink.batches()]
        await reading
        assert result == [
            [(ERR, "err 1"), (OUT, "partial"), (OUT, "0")],
            [(OUT, "1"), (OUT, "2"), (OUT, "3")],
            [(OUT, "4"), (OUT, "no newline"), (ERR, "err")],
        ]

    asyncio.run(scenario())


def test_a_line_fed_on_the_loop_is_sent_after_flush_s_while_the_step_goes_on():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=1000, flush_s=0.05)
        batches = sink.batches()
        first = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.2)
        assert not first.done()  # nothing yet, and no wake-up for nothing
        started = time.monotonic()
        await sink.feed(OUT, b"early\n")
        assert await asyncio.wait_for(first, 5) == [(OUT, "early")]
        assert time.monotonic() - started < 1
        await sink.end()
        assert [b async for b in batches] == []

    asyncio.run(scenario())


def test_a_slow_consumer_holds_the_loops_reader_back_without_blocking_the_loop():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=10, flush_s=60, max_pending=2)
        written = 0

        async def reader() -> None:
            nonlocal written
            for i in range(1000):
                await sink.feed(OUT, b"%d\n" % i)
                written += 1
            await sink.end()

        reading = asyncio.ensure_future(reader())
        # Nobody consumes yet: two batches queue up, a third waits to, the reader waits
        await _until(lambda: written >= 29, "the reader to fill up")
        ticks = 0
        for _ in range(10):  # the loop itself runs on meanwhile
            await asyncio.sleep(0.03)
            ticks += 1
        assert ticks == 10 and written <= 30 and not reading.done()

        lines = [text for batch in [b async for b in sink.batches()] for _, text in batch]
        assert lines == [str(i) for i in range(1000)]
        await asyncio.wait_for(reading, 5)

    asyncio.run(scenario())


def test_abort_drops_what_a_reader_on_the_loop_feeds_after_it():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=1, flush_s=60, max_pending=1)
        await sink.feed(OUT, b"0\n")  # queued
        blocked = asyncio.ensure_future(sink.feed(OUT, b"1\n"))
        await _until(sink._queue.full, "a full queue")
        await asyncio.sleep(0.1)
        assert not blocked.done()
        # As the run does when it stops iterating: abort, then cancel the step's task
        sink.abort()
        blocked.cancel()
        await asyncio.gather(blocked, return_exceptions=True)
        # Later output is dropped at once, and the end waits for nobody
        await asyncio.wait_for(sink.feed(OUT, b"2\n3\n"), 1)
        await asyncio.wait_for(sink.end(), 1)
        assert sink._lines == [] and sink._queue.qsize() == 1

    asyncio.run(scenario())


async def _until(condition, what: str) -> None:
    async def probe() -> bool:
        return condition()

    await await_until(probe, timeout=10, what=what)
