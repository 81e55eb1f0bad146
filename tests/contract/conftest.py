"""One `store` fixture per implementation of the Store protocol; every test in this
folder runs against each of them. PostgreSQL runs with the callers' times for leases
(db_clock=False) so that the same explicit times drive every backend; the database's
clock is tested in tests/integration/test_postgres_store.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ytpiped.store import SqliteStore, Store
from ytpiped.store.postgres import PostgresStore
from ytpiped.testing.memory_store import MemoryStore

BACKENDS = ["sqlite", "memory", "postgres"]


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "contract.db", now=0.0)
    elif request.param == "postgres":
        s = PostgresStore(request.getfixturevalue("pg_url"), now=0.0, db_clock=False)
    else:
        s = MemoryStore()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
