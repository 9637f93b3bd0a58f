"""Reading the journal with a wait: a follower (the API's GET /events) asks for what is
after the last event it saw, and when there is nothing yet, waits on the event loop,
never on the database thread, until something is appended or its wait is over.

A follower asks again as soon as it has its page, so most reads would find nothing:
those are answered without the database when the journal is known to end at after_id.
And a woken reader lingers a moment before it reads, so that the appends of the few
calls that follow (a run's status changes come in bursts) go in one page, not one
round trip each."""

from __future__ import annotations

import asyncio

from entities_svc import journal
from entities_svc.db import DatabaseThread

# The longest a read may wait, whatever it asks: a caller's deadline should end it first.
MAX_WAIT_S = 60.0
# How long a reader woken by an append waits for more before reading: what a follower of
# run statuses is late by at most, beyond the read itself.
LINGER_S = 0.005


class EventFeed:
    def __init__(self, db: DatabaseThread) -> None:
        self._db = db
        self._seen = journal.appended()
        # Replaced by a fresh one each time it is set: a reader keeps the one it took
        # before its query, so an append during the query still wakes it.
        self._grown = asyncio.Event()
        db.after_each_call(self._check)

    def _check(self) -> None:
        """After each database call: wakes the readers if that call appended events."""
        count = journal.appended()
        if count != self._seen:
            self._seen = count
            self._grown.set()
            self._grown = asyncio.Event()

    async def read(self, after_id: int, limit: int, wait_s: float) -> list[journal.Event]:
        """Events after after_id, oldest first; if none, waits up to wait_s for some."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_s, MAX_WAIT_S)
        while True:
            grown = self._grown
            if not self._ends_at(after_id):
                found = await self._db.call(journal.read_after, after_id, limit)
                if found:
                    return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            try:
                await asyncio.wait_for(grown.wait(), remaining)
            except TimeoutError:
                return []
            await asyncio.sleep(min(LINGER_S, max(0.0, deadline - loop.time())))

    @staticmethod
    def _ends_at(after_id: int) -> bool:
        """True when the journal is known to hold nothing after after_id."""
        newest = journal.newest_known()
        return newest is not None and after_id >= newest
