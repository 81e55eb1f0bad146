"""One `store` fixture per implementation of the Store protocol; every test in this
folder runs against each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ytpiped.store import SqliteStore, Store
from ytpiped.testing.memory_store import MemoryStore

BACKENDS = ["sqlite", "memory"]


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "contract.db", now=0.0)
    else:
        s = MemoryStore()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
