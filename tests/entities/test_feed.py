"""Reading the journal with a wait (feed.py): what is known not to be there costs no
database read, and the appends of a burst reach a waiting reader in one page."""

from __future__ import annotations

import asyncio
from typing import Any

from entities_svc import feed, journal, pipelines
from entities_svc.db import DatabaseThread
from tests.entities.support import PIPELINE


class CountingThread(DatabaseThread):
    """A database thread that counts the journal reads it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def call(self, fn: Any, *args: Any) -> Any:
        if fn is journal.read_after:
            self.reads += 1
        return await super().call(fn, *args)


def test_a_reader_at_the_end_waits_without_reading_and_gets_a_burst_in_one_page(
    db_url, monkeypatch
):
    # Long enough for the second call to come within it, however loaded the machine.
    monkeypatch.setattr(feed, "LINGER_S", 0.5)

    async def main() -> tuple[int, list[journal.Event], list[journal.Event], int]:
        db = CountingThread()
        await db.open(db_url)
        try:
            events = feed.EventFeed(db)
            await db.call(pipelines.put_pipeline, "dev", "app", PIPELINE)
            [created] = await events.read(0, 100, 0)
            # Nothing after the newest event: answered without the database.
            db.reads = 0
            assert await events.read(created.id, 100, 0) == []
            unread = db.reads

            waiting = asyncio.ensure_future(events.read(created.id, 100, 5))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            # Two calls in a row, each appending: the woken reader gets both at once.
            await db.call(pipelines.set_paused, "dev", "app", True)
            await db.call(pipelines.set_paused, "dev", "app", False)
            page = await asyncio.wait_for(waiting, 5)
            everything = await events.read(0, 100, 0)
            return unread, page, everything, db.reads
        finally:
            await db.close()

    unread, page, everything, reads = asyncio.run(main())
    assert unread == 0
    assert [e.reason for e in page] == ["PipelinePaused", "PipelineUnpaused"]
    assert page == everything[1:]
    # One read for the woken reader's page, one for `everything`.
    assert reads == 2
