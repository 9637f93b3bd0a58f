"""A run's log: a window of lines (Bob's older API), the whole log as plain text, or the
log followed live (Bob's current API)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from api_server import backends
from api_server.problems import ApiError
from bob_common.run_states import TERMINAL
from bob_pb import entities_pb2

# Lines asked of entities at a time: a long log is streamed, never held whole.
PAGE_LINES = 2000


async def _page(
    b: backends.Backends, run_id: str, offset: int, limit: int = PAGE_LINES
) -> list[str]:
    reply = await b.call(
        b.entities.GetLogs(entities_pb2.GetLogsRequest(run_id=run_id, offset=offset, limit=limit))
    )
    return list(reply.lines)


async def _first_page(b: backends.Backends, run_id: str, tail: int | None) -> tuple[int, list[str]]:
    """Where the answer starts and its first lines: the log's start, or its last `tail`
    lines."""
    if not tail:
        return 0, await _page(b, run_id, 0)
    request = entities_pb2.GetLogsRequest(run_id=run_id, tail=tail, limit=min(tail, PAGE_LINES))
    reply = await b.call(b.entities.GetLogs(request))
    return reply.offset, list(reply.lines)


async def pipeline_log_lines(id_: str, offset: int, lines: int):
    return {"message": await _page(backends.current(), id_, offset, lines)}, 200


async def pipeline_logs(
    id_: str, follow: bool = False, until_end: bool = False, tail: int | None = None
):
    b = backends.current()
    # The first page is read before answering, so that an unknown run is a JSON 404.
    offset, first = await _first_page(b, id_, tail)
    body = _follow(b, id_, offset, first, until_end) if follow else _whole(b, id_, offset, first)
    return StreamingResponse(
        body,
        media_type="text/plain; charset=utf-8",
        # Lines are sent as they come; no proxy should sit on them.
        headers={
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "X-Log-Offset": str(offset),
        },
    )


def _chunk(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


async def _whole(
    b: backends.Backends, run_id: str, offset: int, page: list[str]
) -> AsyncIterator[bytes]:
    while page:
        yield _chunk(page)
        offset += len(page)
        if len(page) < PAGE_LINES:
            return
        page = await _page(b, run_id, offset)


async def _follow(
    b: backends.Backends, run_id: str, offset: int, page: list[str], until_end: bool
) -> AsyncIterator[bytes]:
    """Every line as entities stores it. The stream outlives the run, as Bob's does
    (wendy reports a closed stream as an error), until the client leaves or it has been
    idle for BOB_API_FOLLOW_IDLE_S after the run ended; `until_end` ends it with the run."""
    settings = b.settings
    idle_since = time.monotonic()
    while True:
        if page:
            yield _chunk(page)
            offset += len(page)
            idle_since = time.monotonic()
            if len(page) == PAGE_LINES:
                page = await _page(b, run_id, offset)
                continue
        try:
            # Entities applies a run's events in order, so once the run shows an ended
            # status, every line it printed before that is already stored.
            run = await b.call(b.entities.GetRun(entities_pb2.RunRef(run_id=run_id)))
            ended = run.status in TERMINAL
            page = await _page(b, run_id, offset)
        except ApiError as err:
            if err.status != 503:
                return  # the run is gone (its pipeline was deleted)
            # Entities is restarting: the follower waits for it rather than breaking off.
            ended, page = False, []
        if page:
            continue
        if ended and (until_end or time.monotonic() - idle_since >= settings.follow_idle_s):
            return
        await asyncio.sleep(settings.follow_poll_s if not ended else 1.0)
