"""Run statuses held by the API process and kept current by entities' journal, so that
the API's hottest read, GET /pipelines/status/runs/{id}, costs no gRPC call.

A follower task reads entities' WatchEvents stream: every status change entities commits
carries the run, the status and its journal id, and is applied here within milliseconds.
An entry changes only to a status with a greater journal id (GetRun answers the id of
the event behind the status it shows), so neither a slow GetRun nor a late event can put
an older status back. While the follower is not caught up (at start, or after it lost
entities), only ended runs are answered from memory, as their status never changes; the
rest are asked of entities, and their answers are not kept: the follower takes up the
journal from where it stands when it reconnects, so a change made in between would never
reach such an entry. Bounded: the oldest entries are forgotten first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from bob_common.run_states import TERMINAL
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2

log = logging.getLogger(__name__)

CAPACITY = 100_000
# A stream silent this long is taken for lost: entities sends an empty page every
# watch.KEEPALIVE_S (10 s) while nothing happens.
SILENCE_S = 35.0
RETRY_S = 1.0
# The id to ask for to follow on from where the journal stands, without reading it
# (int64 max: entities answers the journal's newest id and streams from there).
NEWEST = 2**63 - 1
_DELETED = "PipelineDeleted"


@dataclass(frozen=True, slots=True)
class _Known:
    group: str
    name: str
    status: int
    event_id: int


class RunStatuses:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        # run id -> what is known of it; dicts keep insertion order, oldest first.
        self._runs: dict[str, _Known] = {}
        # True while the follower has applied everything entities journaled up to a
        # moment ago: statuses of runs that may still change are then current.
        self._live = False
        # One more each time the follower catches up or loses the journal: a GetRun asked
        # under another one may have read a status that the journal changed unseen.
        self._epoch = 0

    @property
    def live(self) -> bool:
        return self._live

    def caught_up(self) -> None:
        """The follower has the journal's position: what it applies from now on is all."""
        self._epoch += 1
        self._live = True

    def asking(self) -> int:
        """What to give remember() with the answer of a GetRun asked now."""
        return self._epoch

    def status(self, run_id: str) -> int | None:
        """The run's status if it is known to be current; None means: ask entities."""
        known = self._runs.get(run_id)
        if known is None or not (self.live or known.status in TERMINAL):
            return None
        return known.status

    def remember(self, run: entities_pb2.Run, asked: int) -> None:
        """A run as GetRun answered it, `asked` being what asking() said before the call.
        A status that may still change is kept only if the journal was followed all the
        while: a change after the answer is then on its way through the journal."""
        if run.status not in TERMINAL and not (self._live and asked == self._epoch):
            return
        self._keep(run.id, run.group, run.name, run.status, run.status_event_id)

    def forget(self, run_id: str) -> None:
        """Asked of entities next time: this server just changed the run."""
        self._runs.pop(run_id, None)

    def forget_pipeline(self, group: str, name: str) -> None:
        gone = [rid for rid, k in self._runs.items() if (k.group, k.name) == (group, name)]
        for run_id in gone:
            del self._runs[run_id]

    def apply(self, event: entities_pb2.ClusterEvent) -> None:
        """One journal event: a run's status change, a discarded run or a deleted pipeline."""
        if event.run_id:
            if event.run_status == messages_pb2.RUN_STATUS_UNSPECIFIED:
                self.forget(event.run_id)
            else:
                self._keep(event.run_id, event.group, event.name, event.run_status, event.id)
        elif event.reason == _DELETED:
            self.forget_pipeline(event.group, event.name)

    def lost(self) -> None:
        """The follower stopped following: what may have changed since is unknown."""
        self._epoch += 1
        self._live = False
        changing = [rid for rid, k in self._runs.items() if k.status not in TERMINAL]
        for run_id in changing:
            del self._runs[run_id]

    def _keep(self, run_id: str, group: str, name: str, status: int, event_id: int) -> None:
        known = self._runs.get(run_id)
        if known is not None:
            if event_id <= known.event_id:
                return
            del self._runs[run_id]  # re-inserted below, as the newest
        elif len(self._runs) >= self._capacity:
            del self._runs[next(iter(self._runs))]
        self._runs[run_id] = _Known(group, name, status, event_id)

    def __len__(self) -> int:
        return len(self._runs)


async def follow(
    statuses: RunStatuses, entities: entities_pb2_grpc.EntitiesStub, timeout_s: float
) -> None:
    """Applies entities' journal to `statuses` for as long as it runs (cancel to stop):
    from where the journal stands when it (re)connects, live once it has that position."""
    while True:
        stream = entities.WatchEvents(entities_pb2.WatchEventsRequest(after_id=NEWEST))
        try:
            # The first page tells where the journal stands; then pages of new events, or
            # empty ones while nothing happens (none in SILENCE_S: the stream is lost).
            async with asyncio.timeout(timeout_s) as silence:
                async for page in stream:
                    silence.reschedule(asyncio.get_running_loop().time() + SILENCE_S)
                    for event in page.events:
                        statuses.apply(event)
                    if not statuses.live:
                        statuses.caught_up()
                        log.info("following entities' journal from event %d", page.newest_id)
            raise ConnectionError("entities ended the journal stream")
        except (grpc.aio.AioRpcError, TimeoutError, ConnectionError) as err:
            if statuses.live:
                log.warning("stopped following entities' journal: %s", _why(err))
            statuses.lost()
        finally:
            stream.cancel()
        await asyncio.sleep(RETRY_S)


def _why(err: Exception) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    if isinstance(err, TimeoutError):
        return "the stream fell silent (no page in time)"
    return str(err)
