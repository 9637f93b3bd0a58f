"""Line splitting and batching of step output, without Docker: a plain thread plays the
docker SDK's blocking reader."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from bob_pb import messages_pb2
from runner_svc.reporting.logcaps import cut_suffix
from runner_svc.reporting.logsink import MAX_LINE_BYTES, LineSplitter, LogSink
from tests.waiting import await_until

OUT, ERR = messages_pb2.STDOUT, messages_pb2.STDERR


def test_a_line_split_across_chunks_comes_out_whole():
    splitter = LineSplitter()
    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo\nwor") == ["hello"]
    assert splitter.feed(b"ld\n\nlast") == ["world", ""]
    assert splitter.flush() == ["last"]
    assert splitter.flush() == []


def test_utf8_is_decoded_per_line_with_replacement():
    splitter = LineSplitter()
    euro = "€".encode()
    # A character cut in two by the chunking survives; invalid bytes are replaced.
    assert splitter.feed(euro[:1]) == []
    assert splitter.feed(euro[1:] + b"\n\xff\n") == ["€", "\ufffd"]


def test_an_endless_line_is_cut_so_it_cannot_fill_memory():
    splitter = LineSplitter()
    suffix = cut_suffix(MAX_LINE_BYTES)
    piece = MAX_LINE_BYTES - len(suffix)
    lines = splitter.feed(b"x" * (3 * piece + 10))
    # Each piece says it was cut; the rest of the line follows on the next. What is left
    # fits in a line, and waits for the line's end.
    assert lines == ["x" * piece + suffix] * 2
    assert splitter.flush() == ["x" * (piece + 10)]


def _collect(sink: LogSink) -> asyncio.Task[list[list[tuple[int, str]]]]:
    async def collect() -> list[list[tuple[int, str]]]:
        return [batch async for batch in sink.batches()]

    return asyncio.ensure_future(collect())


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_batches_keep_order_and_size_and_streams_are_split_separately():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=3, flush_s=5)
        batches = _collect(sink)

        def reader() -> None:
            sink.write(OUT, b"par")
            sink.write(ERR, b"err 1\nerr")
            sink.write(OUT, b"tial\n" + b"".join(b"%d\n" % i for i in range(5)))
            sink.write(OUT, b"no newline")
            sink.close()

        _in_thread(reader)
        result = await asyncio.wait_for(batches, 10)
        assert result == [
            [(ERR, "err 1"), (OUT, "partial"), (OUT, "0")],
            [(OUT, "1"), (OUT, "2"), (OUT, "3")],
            [(OUT, "4"), (OUT, "no newline"), (ERR, "err")],
        ]

    asyncio.run(scenario())


def test_final_partial_lines_of_both_streams_are_flushed_at_the_end():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=100, flush_s=5)
        batches = _collect(sink)
        _in_thread(lambda: (sink.write(OUT, b"a\nb"), sink.write(ERR, b"c"), sink.close()))
        result = await asyncio.wait_for(batches, 10)
        assert result == [[(OUT, "a"), (OUT, "b"), (ERR, "c")]]

    asyncio.run(scenario())


def test_lines_are_sent_after_flush_s_even_when_the_batch_is_not_full():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=1000, flush_s=0.05)
        more = threading.Event()

        def reader() -> None:
            sink.write(OUT, b"early\n")
            more.wait(10)  # the step is quiet, its stream still open
            sink.close()

        _in_thread(reader)
        started = time.monotonic()
        batches = sink.batches()
        assert await asyncio.wait_for(anext(batches), 5) == [(OUT, "early")]
        assert time.monotonic() - started < 1
        more.set()
        assert [b async for b in batches] == []

    asyncio.run(scenario())


def test_a_silent_step_costs_no_flush_until_it_prints_and_its_line_comes_after_flush_s():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=1000, flush_s=0.02)
        takes = 0
        take = sink._take

        def counted(**kwargs):
            nonlocal takes
            takes += 1
            return take(**kwargs)

        sink._take = counted  # what each flush_s wake-up with nothing handed over calls
        printing, more = threading.Event(), threading.Event()

        def reader() -> None:
            printing.wait(10)
            sink.write(OUT, b"late\n")
            more.wait(10)
            sink.close()

        _in_thread(reader)
        batches = sink.batches()
        first = asyncio.ensure_future(anext(batches))
        # Silent for 25 flush_s: nothing woke up (it was a wake-up every flush_s)
        await asyncio.sleep(0.5)
        assert takes == 0 and not first.done()
        # Then a line comes within flush_s (generously bounded), the step still open
        started = time.monotonic()
        printing.set()
        assert await asyncio.wait_for(first, 5) == [(OUT, "late")]
        assert time.monotonic() - started < 1
        more.set()
        assert [b async for b in batches] == []

    asyncio.run(scenario())


def test_a_slow_consumer_blocks_the_reader_instead_of_buffering():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=10, flush_s=60, max_pending=2)
        written = 0

        def reader() -> None:
            nonlocal written
            for i in range(1000):
                sink.write(OUT, b"%d\n" % i)
                written += 1
            sink.close()

        thread = _in_thread(reader)
        # Nobody consumes yet: two batches queue up, a third waits to, the reader blocks.
        await _until(lambda: written >= 29, "the reader to fill up")
        await asyncio.sleep(0.3)  # a window in which an unbounded reader would run on
        assert written <= 30

        lines = [text for batch in [b async for b in sink.batches()] for _, text in batch]
        assert lines == [str(i) for i in range(1000)]
        await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive()

    asyncio.run(scenario())


async def _until(condition: Callable[[], bool], what: str) -> None:
    async def probe() -> bool:
        return condition()

    await await_until(probe, timeout=10, what=what)


def test_abort_releases_a_blocked_reader_and_drops_later_output():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=1, flush_s=60, max_pending=1)
        done = threading.Event()

        def reader() -> None:
            for i in range(100):
                sink.write(OUT, b"%d\n" % i)
            sink.close()
            done.set()

        _in_thread(reader)
        await _until(sink._queue.full, "a full queue")
        sink.abort()
        await _until(done.is_set, "the reader to finish")
        assert len(sink._lines) == 0

    asyncio.run(scenario())


def test_batches_end_when_the_writer_fails_before_it_could_close():
    async def scenario() -> None:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=10, flush_s=60)
        batches = _collect(sink)
        sink.ensure_ended()
        assert await asyncio.wait_for(batches, 5) == []

    asyncio.run(scenario())


def test_lines_keep_their_order_when_idle_flushes_race_with_full_batches():
    # A flush_s so short that the idle flush often strikes just as a full batch is handed
    # over: the lines collected meanwhile must still come after that batch.
    total = 2000

    async def scenario() -> list[int]:
        sink = LogSink(asyncio.get_running_loop(), batch_lines=50, flush_s=0.0005, max_pending=2)

        def reader() -> None:
            chunk = b""
            for i in range(total):
                chunk += b"%d\n" % i
                if len(chunk) > 300:
                    sink.write(OUT, chunk)
                    chunk = b""
            sink.write(OUT, chunk)
            sink.close()

        thread = _in_thread(reader)
        seen = []
        async for batch in sink.batches():
            seen.extend(int(text) for _, text in batch)
            await asyncio.sleep(0)
        await asyncio.to_thread(thread.join, 5)
        return seen

    for _ in range(100):
        assert asyncio.run(scenario()) == list(range(total))
