"""The store `store.url` names: SQLite in the data dir (the default) or PostgreSQL.

`make_store` builds the async `Store` the daemon runs on (not yet opened); `open_sync` opens
what the CLI commands use synchronously: `SqliteDB` itself, or a `BlockingStore` over a
`PostgresStore` with the same methods.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from ytpiped import paths
from ytpiped.clock import Clock
from ytpiped.config import Settings
from ytpiped.paths import DataDir
from ytpiped.store.blocking import BlockingStore, SyncDB
from ytpiped.store.model import StoreNotReady
from ytpiped.store.postgres import PostgresStore
from ytpiped.store.sqlite import SqliteDB
from ytpiped.store.sqlite_store import SqliteStore

DB_NAME = paths.DB
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def db_path(data_dir: Path) -> Path:
    return DataDir(data_dir).db


def host_id(settings: Settings) -> str:
    """`daemon.host_id`, or the machine's host name."""
    return settings.daemon.host_id or socket.gethostname()


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def make_store(settings: Settings, clock: Clock, *,
               on_full: Callable[[BaseException, bool], None] | None = None,
               on_writable: Callable[[], None] | None = None,
               opener: Callable[[Path, float], SqliteDB] | None = None,
               ) -> SqliteStore | PostgresStore:
    """The daemon's store (open it with `await store.open()`). The SQLite callbacks (a full
    disk pauses writes) and `opener` (tests) apply to SQLite only."""
    url = settings.store.url
    if is_postgres(url):
        return PostgresStore(url, clock.now(), clock=clock, host=host_id(settings),
                             shared_files=settings.store.shared_files)
    return SqliteStore(db_path(settings.data_path), clock.now(), sleep=clock.sleep,
                       on_full=on_full, on_writable=on_writable, opener=opener)


def open_sync(settings: Settings, *, readonly: bool) -> SyncDB | None:
    """The store for a CLI command; None when `readonly` and there is nothing to read yet
    (no database, or its schema is still being created)."""
    url = settings.store.url
    try:
        if is_postgres(url):
            return BlockingStore.opened(PostgresStore(url, time.time(), readonly=readonly,
                                                      pool_size=1, host=host_id(settings)))
        path = db_path(settings.data_path)
        if readonly and not path.exists():
            return None
        return SqliteDB(path, readonly=readonly, now=time.time())
    except StoreNotReady:
        return None
