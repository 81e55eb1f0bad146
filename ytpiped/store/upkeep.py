"""Database upkeep behind `ytpiped db check|backup`: SQLite's integrity check and its
online backup API. Both read through a read-only connection, so they run while the daemon
writes (WAL: readers and the writer do not block each other)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ytpiped.store.sqlite import DatabaseCorrupt, connect, is_corrupt

#: how many problems integrity_check reports at most
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class CheckReport:
    database: Path
    problems: list[str] = field(default_factory=list)
    videos: int | None = None
    schema_version: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {"database": str(self.database), "ok": self.ok, "problems": self.problems,
                "videos": self.videos, "schema_version": self.schema_version}


def _problems(conn: sqlite3.Connection, *, quick: bool) -> list[str]:
    pragma = "quick_check" if quick else "integrity_check"
    rows = conn.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})").fetchall()
    # a row may hold several lines, under a "*** in database main ***" heading
    return [line.strip() for r in rows if r[0] != "ok" for line in str(r[0]).splitlines()
            if line.strip() and not line.startswith("***")]


def _summary(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
    """(schema version, videos) of a ytpiped database; (None, None) for any other."""
    try:
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        videos = conn.execute("SELECT count(*) FROM videos").fetchone()[0]
    except sqlite3.OperationalError:  # no such table
        return None, None
    return version, videos


def check(path: Path, *, quick: bool = False) -> CheckReport:
    """SQLite's integrity_check (quick_check with `quick`: no index contents, faster) of the
    database at `path`, read-only. A file that is not a database is one problem."""
    try:
        conn = connect(path, readonly=True)
    except sqlite3.DatabaseError as exc:
        if is_corrupt(exc):
            return CheckReport(path, [str(exc)])
        raise
    try:
        problems = _problems(conn, quick=quick)
        version, videos = _summary(conn) if not problems else (None, None)
    except sqlite3.DatabaseError as exc:
        if not is_corrupt(exc):
            raise
        return CheckReport(path, [str(exc)])
    finally:
        conn.close()
    if not problems and version is None:
        problems = ["not a ytpiped database (no schema_version or videos table)"]
    return CheckReport(path, problems, videos, version)


def ensure_sound(path: Path) -> None:
    """Raise DatabaseCorrupt unless a quick check of an existing database finds it sound
    (the daemon's start: a damaged file stops it with a message, not a crash loop)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    problems = check(path, quick=True).problems
    problems = [p for p in problems if not p.startswith("not a ytpiped database")]
    if problems:
        more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
        raise DatabaseCorrupt(path, problems[0] + more)


def backup(path: Path, dest: Path) -> CheckReport:
    """Copy the database at `path` to `dest` with SQLite's online backup API: a consistent
    snapshot even while the daemon writes. The copy is checked, standalone (no -wal file
    needed) and appears at `dest` only when complete; a damaged source raises
    DatabaseCorrupt and leaves nothing. Replaces `dest` if it exists (the caller decides)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        source = connect(path, readonly=True)
        try:
            target = sqlite3.connect(tmp, isolation_level=None)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()
        finally:
            source.close()
        report = check(tmp)
        if not report.ok:
            raise DatabaseCorrupt(path, report.problems[0])
        os.replace(tmp, dest)
    except sqlite3.DatabaseError as exc:
        if is_corrupt(exc):
            raise DatabaseCorrupt(path, str(exc)) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return CheckReport(dest, [], report.videos, report.schema_version)
