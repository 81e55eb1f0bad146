"""The only package that touches SQL. `Store` (store/base.py) is the async interface the
daemon's workers, stages and status use; `SqliteStore` implements it over one SQLite file
(the default), running `SqliteDB`, the synchronous SQLite class that CLI commands also use
directly, on one dedicated thread."""

from __future__ import annotations

from pathlib import Path

from ytpiped import paths
from ytpiped.paths import DataDir
from ytpiped.store.base import Store
from ytpiped.store.model import (
    BUFFER_STATES,
    OUTCOME_FIELDS,
    Event,
    NewVideo,
    PerfSample,
    StoreNotReady,
    VideoRow,
)
from ytpiped.store.sqlite import DatabaseCorrupt, SqliteDB, corruption_named
from ytpiped.store.sqlite_store import SqliteStore, free_bytes, is_store_full

__all__ = ["BUFFER_STATES", "DB_NAME", "OUTCOME_FIELDS", "DatabaseCorrupt", "Event",
           "NewVideo", "PerfSample", "SqliteDB", "SqliteStore", "Store", "StoreNotReady",
           "VideoRow", "corruption_named", "db_path", "free_bytes", "is_store_full"]

DB_NAME = paths.DB


def db_path(data_dir: Path) -> Path:
    return DataDir(data_dir).db
