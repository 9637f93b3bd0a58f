"""The journal as one server-streaming rpc (WatchEvents): what a follower that never stops
(the API's run statuses) reads instead of one ListEvents call per batch of events, each
with its interceptors, its database read and grpc's per-call cost on both sides.

A stream sends what is after the caller's position at once, then each batch of events as
it commits, woken as ListEvents' wait is (feed.py), one page of at most journal.PAGE_MAX
at a time. It reads the next page only once the caller has taken the last one, so the
journal, not the stream, holds what a slow caller has not read yet: a stream holds one
page at most, and a page the caller does not take within WRITE_TIMEOUT_S ends the stream
(the caller reconnects from its position). While nothing happens, an empty page with the
position comes every KEEPALIVE_S: the caller knows a silent stream is dead, whatever
stalled (the connection, or entities itself, which gRPC's keepalive pings would not tell).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import grpc

from bob_pb import entities_pb2
from entities_svc import journal
from entities_svc.feed import EventFeed

log = logging.getLogger(__name__)

# An empty page this often on a quiet stream; a follower takes a stream silent for a few
# times as long as lost.
KEEPALIVE_S = 10.0
# A page the caller has not taken in this long ends its stream.
WRITE_TIMEOUT_S = 30.0
# How long ending a stream waits for its status to go before dropping the call.
END_S = 1.0
# Streams one caller (one identity; every plaintext caller is one) may hold at once.
MAX_PER_CALLER = 8


class Watchers:
    """The open streams: at most MAX_PER_CALLER per caller, all ended by stop()."""

    def __init__(self, feed: EventFeed, newest_id: Callable[[], Awaitable[int]]) -> None:
        self._feed = feed
        # Reads where the journal stands (journal.newest_id on the database thread).
        self._newest_id = newest_id
        self._open: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[object]] = set()
        self.stopping = False

    def stop(self) -> None:
        """Ends every stream with UNAVAILABLE (entities is stopping), and refuses new ones."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def _holding(self, who: str) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._open[who] += 1
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)
            self._open[who] -= 1
            if not self._open[who]:
                del self._open[who]

    async def serve(self, after_id: int, who: str, context: grpc.aio.ServicerContext) -> None:
        """Streams the journal after after_id to `context` until the caller leaves, it
        cannot keep up, or entities stops."""
        if self.stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "entities is stopping")
        if self._open[who] >= MAX_PER_CALLER:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{who} already holds {MAX_PER_CALLER} WatchEvents streams, the most allowed",
            )
        with self._holding(who):
            try:
                await self._stream(after_id, context)
            except asyncio.CancelledError:
                if not self.stopping:
                    raise  # the caller left
            # Ending outside the except block: the cancellation is handled.
            await _end(context, grpc.StatusCode.UNAVAILABLE, "entities is stopping")

    async def _stream(self, after_id: int, context: grpc.aio.ServicerContext) -> None:
        position = after_id
        wait_s = 0.0  # the first page at once, then wait for news
        while True:
            found = await self._feed.read(position, journal.PAGE_MAX, wait_s)
            if found:
                position = found[-1].id
            elif not wait_s:
                # Where the journal stands: from there on when after_id is beyond it.
                position = await self._newest_id()
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await context.write(page(found, position))
            except TimeoutError:
                log.warning(
                    "ended a WatchEvents stream at %d: its caller did not keep up", position
                )
                await _end(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the caller took no page in {WRITE_TIMEOUT_S:g} s; "
                    f"reconnect from the last newest_id taken",
                )
            wait_s = KEEPALIVE_S


async def _end(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """Ends the stream with this status; when the status cannot go within END_S (it waits
    behind pages the caller has not taken), drops the call instead: grpc cancels it (the
    caller sees CANCELLED) and lets go of what it held."""
    try:
        async with asyncio.timeout(END_S):
            await context.abort(code, details)
    except TimeoutError:
        raise asyncio.CancelledError(details) from None


def page(found: list[journal.Event], newest_id: int) -> entities_pb2.ListEventsResponse:
    """Events as ListEvents and WatchEvents answer them."""
    return entities_pb2.ListEventsResponse(
        events=[entities_pb2.ClusterEvent(**vars(event)) for event in found], newest_id=newest_id
    )
