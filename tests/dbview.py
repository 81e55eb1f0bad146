"""Reads of a test's database that close their connection (every test does)."""

from __future__ import annotations

from pathlib import Path

from ytpiped.store import SqliteDB, VideoRow, db_path


def row(data_dir: Path, video_id: str) -> VideoRow | None:
    with SqliteDB(db_path(data_dir), readonly=True) as s:
        return s.get(video_id)


def counts(data_dir: Path) -> dict[str, int]:
    with SqliteDB(db_path(data_dir), readonly=True) as s:
        return s.counts()
