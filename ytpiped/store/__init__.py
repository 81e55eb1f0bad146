"""The only package that touches SQL. `Store` is synchronous (CLI commands); the daemon
uses `AsyncStore`, which owns one connection on one dedicated thread so that SQLite never
blocks the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from ytpiped.errors import is_disk_full
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
           "StoreNotReady", "VideoRow", "corruption_named", "db_path", "free_bytes",
           "is_store_full"]

T = TypeVar("T")
DB_NAME = "ytpiped.db"
#: below this much free space, any I/O error of SQLite is taken as a full disk
LOW_FREE_BYTES = 4 * 2**20
FULL_RETRY_S = 5.0


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return None


def is_store_full(exc: BaseException, path: Path) -> bool:
    """A write that failed because the disk (or quota) under the database is full:
    SQLITE_FULL, ENOSPC, or an I/O error of SQLite while almost no space is left (the WAL
    index cannot grow, the journal cannot be written)."""
    if is_disk_full(exc):
        return True
    if not isinstance(exc, sqlite3.Error):
        return False
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
            "database or disk is full" in str(exc):
        return True
    if isinstance(exc, sqlite3.OperationalError) and ("disk I/O error" in str(exc) or
                                                      "unable to open" in str(exc)):
        free = free_bytes(path)
        return free is not None and free < LOW_FREE_BYTES
    return False


class AsyncStore:
    """Runs `Store` methods on a single writer thread: `await astore.run(lambda s: s.x())`.

    A full disk pauses instead of failing: a call that fails because the database cannot
    grow is kept and tried again every `retry_full_s` until space returns (or the store
    closes), so every claim, renewal and outcome waits while reads go on. `on_full(exc,
    first)` is called at every failed try (`first` for the first of a spell), and
    `on_writable` once when a write succeeds again."""

    def __init__(self, path: Path, now: float, *,
                 sleep: Callable[[float], Awaitable[None]] | None = None,
                 retry_full_s: float = FULL_RETRY_S,
                 on_full: Callable[[BaseException, bool], None] | None = None,
                 on_writable: Callable[[], None] | None = None,
                 opener: Callable[[Path, float], Store] | None = None) -> None:
        self._path = path
        self._now = now
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ytpiped-store")
        self._store: Store | None = None
        self._sleep = sleep or asyncio.sleep
        self.retry_full_s = retry_full_s
        self.on_full, self.on_writable = on_full, on_writable
        self._opener = opener or (lambda p, now: Store(p, now=now))
        self._closing = asyncio.Event()
        self.full_since: BaseException | None = None  # the error that paused writes
        self._waiting = 0  # calls kept until space returns

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> None:
        """Open (creating the schema if needed) after a quick integrity check: a damaged
        file raises DatabaseCorrupt here, not in the middle of the work."""
        def _open() -> None:
            ensure_sound(self._path)
            self._store = self._opener(self._path, self._now)

        await self._retrying(lambda: asyncio.get_running_loop().run_in_executor(self._pool,
                                                                                _open))

    async def run(self, fn: Callable[[Store], T]) -> T:
        store = self._store
        if store is None:
            raise RuntimeError("AsyncStore is not open")
        return await self._retrying(
            lambda: asyncio.get_running_loop().run_in_executor(self._pool, fn, store))

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        failed = False
        while True:
            try:
                result = await call()
            except Exception as exc:
                if self._closing.is_set() or not is_store_full(exc, self._path):
                    if failed:
                        self._waiting -= 1
                    raise
                first, self.full_since = self.full_since is None, self.full_since or exc
                if not failed:
                    failed, self._waiting = True, self._waiting + 1
                if self.on_full is not None:
                    self.on_full(exc, first)
                await self._pause()
                continue
            # a read succeeds on a full disk too: only a kept write that went through (or
            # any call once no write waits) says that space is back
            if failed:
                self._waiting -= 1
            if self.full_since is not None and (failed or self._waiting == 0):
                self.full_since = None
                if self.on_writable is not None:
                    self.on_writable()
            return result

    async def _pause(self) -> None:
        sleeper = asyncio.ensure_future(self._sleep(self.retry_full_s))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({sleeper, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closing.cancel()

    def begin_close(self) -> None:
        """From now on a write that finds the disk full fails at once instead of waiting
        (shutdown: rows still leased come back at the next start)."""
        self._closing.set()

    async def close(self) -> None:
        self.begin_close()
        store, self._store = self._store, None
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, store.close)
        self._pool.shutdown(wait=True)
