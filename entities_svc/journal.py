"""The cluster's event journal (Bob's GET /events): what changed, in Bob's shape.

Every change appends its event in the transaction of the change itself, so the journal
never tells of a change that was rolled back and never misses one that committed. Ids
increase: a follower asks for the events after the last id it saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import fn

from entities_svc import compiled
from entities_svc.clock import now_ms
from entities_svc.models import ClusterEvent

NORMAL = "Normal"
WARNING = "Warning"
# Most events one read answers: with MESSAGE_MAX, a page stays far below gRPC's 4 MiB.
PAGE_MAX = 1000
MESSAGE_MAX = 1024
# As Bob's event stream: events older than this go, whatever their number.
KEEP_MS = 7 * 24 * 3600 * 1000
_MAX_ID = 2**63 - 1
# The columns read_after reads, in the order of Event's fields.
_COLUMNS = (
    ClusterEvent.id,
    ClusterEvent.at_ms,
    ClusterEvent.type,
    ClusterEvent.reason,
    ClusterEvent.kind,
    ClusterEvent.message,
    ClusterEvent.run_id,
    ClusterEvent.run_status,
    ClusterEvent.group,
    ClusterEvent.name,
)

# Events appended by this process: the asyncio side compares it before and after a
# database call to know whether waiting readers have something new (see feed.py).
_appended = 0
# The newest id in the journal as far as this process knows: from newest_id(), then from
# each append (None until either). entities is the journal's only writer, through one
# connection, so ids are handed out in commit order. An append rolled back leaves it too
# high, which only costs a read that finds nothing; it is never too low.
_newest: int | None = None


@dataclass(frozen=True)
class Event:
    id: int
    at_ms: int
    type: str
    reason: str
    kind: str
    message: str
    # Set for a run's status change: the run, and the RunStatus value it entered (0 when
    # the run was discarded).
    run_id: str = ""
    run_status: int = 0
    # The pipeline a pipeline's or a run's event is about.
    group: str = ""
    name: str = ""


def appended() -> int:
    return _appended


def newest_known() -> int | None:
    """The newest id in the journal, never below the true one; None when not known yet."""
    return _newest


def append(
    kind: str,
    reason: str,
    message: str,
    type_: str = NORMAL,
    at_ms: int = 0,
    *,
    run_id: str = "",
    run_status: int = 0,
    group: str = "",
    name: str = "",
) -> int:
    """Records an event (at at_ms, or now) and answers its id; call it inside the
    transaction of the change it describes."""
    global _appended, _newest
    if len(message) > MESSAGE_MAX:
        message = message[: MESSAGE_MAX - 3] + "..."
    values = (at_ms or now_ms(), type_, reason, kind, message, run_id, run_status, group, name)
    event_id = compiled.insert_id("journal append", _insert, values)
    _appended += 1
    _newest = event_id
    return event_id


def _insert(m: list[int]) -> object:
    fields = ("at_ms", "type", "reason", "kind", "message", "run_id", "run_status", "group", "name")
    return ClusterEvent.insert(**dict(zip(fields, m, strict=True)))


def _after(m: list[int]) -> object:
    return (
        ClusterEvent.select(*_COLUMNS)
        .where(ClusterEvent.id > m[0])
        .order_by(ClusterEvent.id)
        .limit(m[1])
    )


def read_after(after_id: int, limit: int) -> list[Event]:
    """Up to `limit` (at most PAGE_MAX) events with an id above after_id, oldest first."""
    limit = min(limit or PAGE_MAX, PAGE_MAX)
    cursor = compiled.execute("journal after", _after, (min(after_id, _MAX_ID), limit))
    return [Event(*row) for row in cursor.fetchall()]


def newest_id() -> int:
    """The greatest id in the journal; 0 when it is empty."""
    global _newest
    newest: int = ClusterEvent.select(fn.MAX(ClusterEvent.id)).scalar() or 0
    _newest = newest
    return newest


def prune(now: int, keep_rows: int, batch: int) -> int:
    """Deletes up to `batch` of the oldest events that are older than KEEP_MS (at `now`, ms
    since the epoch) or beyond
    the newest keep_rows; returns how many. The newest event always stays: SQLite gives a
    new row the highest id plus one, so an emptied table would hand out ids again that
    followers have already seen."""
    newest = newest_id()
    if not newest:
        return 0
    # Ids may have gaps (PostgreSQL sequences skip rolled-back ones), so this keeps at
    # most keep_rows, and only an index range is read.
    beyond_count = ClusterEvent.id <= newest - max(keep_rows, 1)
    too_old = (ClusterEvent.at_ms < now - KEEP_MS) & (ClusterEvent.id < newest)
    deleted = 0
    for condition in (beyond_count, too_old):
        oldest = (
            ClusterEvent.select(ClusterEvent.id)
            .where(condition)
            .order_by(ClusterEvent.id)
            .limit(batch - deleted)
        )
        deleted += ClusterEvent.delete().where(ClusterEvent.id.in_(oldest)).execute()
        if deleted >= batch:
            break
    return deleted
