"""The only package that touches SQL. `Store` is synchronous (CLI commands); the daemon
uses `AsyncStore`, which owns one connection on one dedicated thread so that SQLite never
blocks the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ytpiped.store.sqlite import (
    DatabaseCorrupt,
    Event,
    NewVideo,
    Store,
    StoreNotReady,
    VideoRow,
    corruption_named,
)
from ytpiped.store.upkeep import ensure_sound

__all__ = ["DB_NAME", "AsyncStore", "DatabaseCorrupt", "Event", "NewVideo", "Store",
           "StoreNotReady", "VideoRow", "corruption_named", "db_path"]

T = TypeVar("T")
DB_NAME = "ytpiped.db"


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


class AsyncStore:
    """Runs `Store` methods on a single writer thread: `await astore.run(lambda s: s.x())`."""

    def __init__(self, path: Path, now: float) -> None:
        self._path = path
        self._now = now
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ytpiped-store")
        self._store: Store | None = None

    async def open(self) -> None:
        """Open (creating the schema if needed) after a quick integrity check: a damaged
        file raises DatabaseCorrupt here, not in the middle of the work."""
        def _open() -> None:
            ensure_sound(self._path)
            self._store = Store(self._path, now=self._now)

        await asyncio.get_running_loop().run_in_executor(self._pool, _open)

    async def run(self, fn: Callable[[Store], T]) -> T:
        store = self._store
        if store is None:
            raise RuntimeError("AsyncStore is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, store)

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, store.close)
        self._pool.shutdown(wait=True)
