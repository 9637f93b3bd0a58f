"""The shared retry helper: retries what it is told to, gives up when stopping, and
leaves other failures to the caller."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bob_common.backoff import delay_s, until_done

log = logging.getLogger(__name__)


def test_retries_until_the_attempt_succeeds_and_logs_each_miss(caplog):
    calls = []

    async def attempt():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("away")
        return "ok"

    with caplog.at_level(logging.WARNING):
        result = asyncio.run(
            until_done(attempt, what="the broker", errors=OSError, log=log, first_s=0.01)
        )
    assert result == "ok"
    assert len(calls) == 3
    misses = [r.getMessage() for r in caplog.records if "the broker" in r.getMessage()]
    assert len(misses) == 2
    assert "retrying in 0.01 s" in misses[0]


def test_waits_twice_as_long_each_time_up_to_the_most(caplog):
    calls = []

    async def attempt():
        calls.append(1)
        if len(calls) < 6:
            raise OSError("away")

    with caplog.at_level(logging.WARNING):
        asyncio.run(
            until_done(attempt, what="x", errors=OSError, log=log, first_s=0.01, most_s=0.04)
        )
    waits = [r.getMessage().split("retrying in ")[1] for r in caplog.records]
    assert waits == ["0.01 s", "0.02 s", "0.04 s", "0.04 s", "0.04 s"]


def test_gives_up_with_none_when_stopping_and_cuts_the_wait_short():
    async def main():
        stop = asyncio.Event()
        calls = []

        async def attempt():
            calls.append(1)
            raise OSError("away")

        task = asyncio.create_task(
            until_done(attempt, what="x", errors=OSError, log=log, stop=stop, first_s=30)
        )
        await asyncio.sleep(0.05)
        stop.set()
        result = await asyncio.wait_for(task, 1)
        return result, calls

    result, calls = asyncio.run(main())
    assert result is None
    assert len(calls) == 1


def test_other_failures_are_the_callers():
    async def attempt():
        raise ValueError("bad")

    with pytest.raises(ValueError):
        asyncio.run(until_done(attempt, what="x", errors=OSError, log=log))


def test_no_attempt_once_stopped():
    async def main():
        stop = asyncio.Event()
        stop.set()

        async def attempt():
            raise AssertionError("must not be called")

        return await until_done(attempt, what="x", errors=OSError, log=log, stop=stop)

    assert asyncio.run(main()) is None


def test_gives_up_with_the_last_error_once_the_next_wait_would_end_too_late():
    calls = []

    async def attempt():
        calls.append(1)
        raise OSError(f"away {len(calls)}")

    # Waits 0.01, 0.02, 0.04 (0.07 s in all); the next, 0.08, would end past 0.1 s.
    with pytest.raises(OSError, match="away 4"):
        asyncio.run(
            until_done(attempt, what="x", errors=OSError, log=log, first_s=0.01, give_up_s=0.1)
        )
    assert len(calls) == 4


def test_an_outbox_retry_waits_twice_as_long_each_time_up_to_the_most():
    waits = [delay_s(n, first_s=1, most_s=60) for n in range(1, 10)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert delay_s(0, first_s=1, most_s=60) == 1
