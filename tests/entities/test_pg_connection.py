"""entities on PostgreSQL outlives its connections: a lost one (the server restarted, or
ended it) fails the call that met the loss, and the next call connects again."""

from __future__ import annotations

import asyncio

import peewee
import pytest

from entities_svc import pipelines
from entities_svc.db import DatabaseThread
from tests.entities.support import PIPELINE
from tests.support import raw_db

END_OTHERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def test_a_lost_connection_fails_one_call_and_the_next_connects_again(pg_url):
    async def main() -> None:
        db = DatabaseThread()
        await db.open(pg_url)
        try:
            await db.call(pipelines.put_pipeline, "dev", "app", PIPELINE)
            await db.read(pipelines.get_pipeline, "dev", "app")
            # When the server ends both of entities' connections (writer and reader)
            assert len(raw_db.execute(pg_url, END_OTHERS)) == 2
            # Then on each thread the next call fails, and the one after it works
            for on_thread in (db.call, db.read):
                with pytest.raises(peewee.OperationalError):
                    await on_thread(pipelines.get_pipeline, "dev", "app")
                stored = await on_thread(pipelines.get_pipeline, "dev", "app")
                assert stored.name == "app"
            await db.call(pipelines.set_paused, "dev", "app", True)
        finally:
            await db.close()

    asyncio.run(main())
