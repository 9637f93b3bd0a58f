"""Fixtures of the entities tests: a fresh database bound to the domain modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peewee import Database

from entities_svc import pipelines
from entities_svc.db import close_database, open_database
from tests.entities.support import PIPELINE


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """The domain modules bound to a fresh SQLite file, used from the test's thread."""
    database = open_database(db_url)
    yield database
    close_database(database)


@pytest.fixture
def pipeline(database: Database) -> tuple[str, str]:
    pipelines.put_pipeline("dev", "app", PIPELINE)
    return "dev", "app"
