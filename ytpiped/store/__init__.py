"""The only package that touches SQL. `Store` (store/base.py) is the async interface the
daemon's workers, stages and status use; `SqliteStore` implements it over one SQLite file
(the default), running `SqliteDB`, the synchronous SQLite class that CLI commands also use
directly, on one dedicated thread; `PostgresStore` (store/postgres.py) implements it on
PostgreSQL for several hosts. `store.url` picks one (store/factory.py)."""

from __future__ import annotations

from ytpiped.store.base import Store
from ytpiped.store.factory import DB_NAME, db_path, is_postgres, make_store, open_sync
from ytpiped.store.model import (
    BUFFER_STATES,
    OUTCOME_FIELDS,
    Event,
    NewVideo,
    PerfSample,
    StoreNotReady,
    StoreUnavailable,
    VideoRow,
)
from ytpiped.store.sqlite import DatabaseCorrupt, SqliteDB, corruption_named
from ytpiped.store.sqlite_store import SqliteStore, free_bytes, is_store_full

__all__ = ["BUFFER_STATES", "DB_NAME", "OUTCOME_FIELDS", "DatabaseCorrupt", "Event",
           "NewVideo", "PerfSample", "SqliteDB", "SqliteStore", "Store", "StoreNotReady",
           "StoreUnavailable", "VideoRow", "corruption_named", "db_path", "free_bytes",
           "is_postgres", "is_store_full", "make_store", "open_sync"]
