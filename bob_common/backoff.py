"""The one way Bob's services wait for something that is away (the broker, entities, the
Docker engine): retry with exponential backoff, log each miss, and give up at once when
the service is stopping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")

FIRST_S = 0.5
MOST_S = 10.0


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    errors: type[BaseException] | tuple[type[BaseException], ...],
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    stop: asyncio.Event | None = None,
    first_s: float = FIRST_S,
    most_s: float = MOST_S,
    give_up_s: float | None = None,
) -> T | None:
    """attempt()'s result, retried while it raises one of `errors`, waiting first_s, then
    twice as long each time up to most_s. None once `stop` is set, which also cuts a wait
    short. With give_up_s, the last error is raised once a wait would end later than that
    many seconds after the first attempt. Any other exception is the caller's."""
    stopping = stop or asyncio.Event()
    if stopping.is_set():
        return None
    loop = asyncio.get_running_loop()
    began = loop.time()
    # The first attempt goes without tenacity's machinery, whose setup costs more than a
    # publish that succeeds at once, as nearly all do; a miss is replayed as the loop's
    # first attempt below, so what follows is as if the loop had made it.
    try:
        return await attempt()
    except errors as exc:
        missed_first: BaseException | None = exc
    wait = tenacity.wait_exponential(multiplier=first_s, min=first_s, max=most_s)

    def over(state: tenacity.RetryCallState) -> bool:
        if stopping.is_set():
            return True
        if give_up_s is None:
            return False
        return loop.time() + wait(state) - began > give_up_s

    async def pause(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)

    def missed(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        log.warning("cannot reach %s (%r); retrying in %.3g s", what, exc, delay)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(errors),
        wait=wait,
        stop=over,
        sleep=pause,
        before_sleep=missed,
        reraise=True,
    )
    try:
        async for try_ in retrying:
            if stopping.is_set():  # set during the last wait: no further attempt
                return None
            with try_:
                if missed_first is not None:
                    replayed, missed_first = missed_first, None
                    raise replayed
                result = await attempt()
    except errors:
        if stopping.is_set():
            return None
        raise
    return result


def delay_s(failures: int, *, first_s: float = FIRST_S, most_s: float = MOST_S) -> float:
    """How long to wait after the `failures`-th failure in a row (1, 2, ...) when the
    retries are spread over time rather than awaited in a loop (an outbox's due time):
    the same exponential schedule until_done waits by."""
    wait = tenacity.wait_exponential(multiplier=first_s, min=first_s, max=most_s)
    state = tenacity.RetryCallState(tenacity.AsyncRetrying(), None, (), {})
    state.attempt_number = max(failures, 1)
    return float(wait(state))


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleeps `seconds`, or less: until `stopping` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def every(
    seconds: float,
    work: Callable[[], Awaitable[object]],
    *,
    what: str,
    log: logging.Logger,
    stopping: asyncio.Event,
) -> None:
    """Runs work() every `seconds` until `stopping` is set. A failure is logged and the
    next round tries again: a loop that looks for due work must outlive one bad look."""
    while not stopping.is_set():
        try:
            await work()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("%s failed", what)
        await pause(stopping, seconds)
