"""GET /events: the cluster's event journal as Server-Sent Events, in Bob's format.

wendy reads every non-empty line as `data: ` followed by JSON and crashes on a line
shorter than six bytes, so what goes beyond Bob's format is sent only to clients that ask:
`id:` lines to SSE clients (EventSource sends `Accept: text/event-stream`) and to those
resuming, keep-alive comments to those that name an interval.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from connexion import request
from starlette.responses import StreamingResponse

from api_server import backends
from api_server.problems import ApiError
from bob_pb import entities_pb2

# How long one ListEvents call may wait for the next event (entities answers sooner when
# one comes); at most half the gRPC deadline, so the wait never runs into it.
WAIT_MS = 2000
KEEPALIVE_HEADER = "bob-keepalive"


def _last_event_id(after: int | None) -> int | None:
    if after is not None:
        return after
    given = request.headers.get("last-event-id", "").strip()
    if not given:
        return None
    if not given.isdigit():
        raise ApiError(400, f"Last-Event-ID {given!r} is not an event id")
    return int(given)


def _keepalive_s(keepalive: int | None) -> int | None:
    if keepalive is not None:
        return keepalive
    given = request.headers.get(KEEPALIVE_HEADER, "").strip()
    if not given:
        return None
    if not given.isdigit() or not 1 <= int(given) <= 3600:
        raise ApiError(400, f"{KEEPALIVE_HEADER} must be seconds from 1 to 3600, got {given!r}")
    return int(given)


def event_lines(event: entities_pb2.ClusterEvent, with_id: bool) -> bytes:
    data = json.dumps(
        {
            "at": event.at_ms,
            "type": event.type,
            "reason": event.reason,
            "kind": event.kind,
            "message": event.message,
        },
        ensure_ascii=False,
    )
    head = f"id: {event.id}\n" if with_id else ""
    return f"{head}data: {data}\n\n".encode()


async def get_events(after: int | None = None, keepalive: int | None = None):
    b = backends.current()
    resume_from = _last_event_id(after)
    with_ids = resume_from is not None or "text/event-stream" in request.headers.get("accept", "")
    interval = _keepalive_s(keepalive)
    # The first page is read before answering, so that an unreachable entities is a 503.
    first = await _events(b, resume_from or 0, wait=False)
    return StreamingResponse(
        _stream(b, first, resume_from or 0, with_ids, interval),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(b: backends.Backends, after: int, wait: bool) -> list:
    reply = await b.call(
        b.entities.ListEvents(
            entities_pb2.ListEventsRequest(
                after_id=after,
                wait_ms=min(WAIT_MS, int(b.settings.common.grpc_timeout_s * 500)) if wait else 0,
            )
        )
    )
    return list(reply.events)


async def _stream(
    b: backends.Backends,
    page: list,
    after: int,
    with_ids: bool,
    keepalive_s: int | None,
) -> AsyncIterator[bytes]:
    """Until the client leaves: entities waits for the next event, so an idle stream costs
    one call every WAIT_MS."""
    last_sent = time.monotonic()
    while True:
        for event in page:
            yield event_lines(event, with_ids)
            after = event.id
            last_sent = time.monotonic()
        if keepalive_s and time.monotonic() - last_sent >= keepalive_s:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        try:
            page = await _events(b, after, wait=True)
        except ApiError as err:
            if err.status != 503:
                raise
            page = []  # entities is restarting; the client keeps its stream
            await asyncio.sleep(1.0)
