"""`ytpiped db copy --to postgresql://…`: move a SQLite run into an empty PostgreSQL store.

Every table is copied whole (videos with their attempts, leases, fencing tokens and info;
events; parts; perf samples; daemon state), keeping ids and SQLite's insertion order
(rowid becomes `seq`), in ONE transaction on the target: a copy that fails leaves the
target as empty as it found it. Before it commits, the copy counts every table on both
sides and rolls back on any difference. The SQLite file is only read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytpiped.errors import YtpipedError
from ytpiped.store.postgres import PostgresStore, redact
from ytpiped.store.sqlite import SqliteDB

#: tables in the order they are copied (parts refer to videos), each in its own order
TABLES = {"videos": "rowid", "events": "id", "parts": "video_id, kind, idx",
          "perf_samples": "id", "daemon_state": "key"}
#: identity columns whose sequences go on after the copied values
IDENTITIES = (("videos", "seq"), ("events", "id"), ("perf_samples", "id"))
BATCH = 5_000


class CopyRefused(YtpipedError):
    """The target is not an empty ytpiped database, or the copy did not add up."""


@dataclass
class CopyReport:
    source: Path
    target: str  # the URL without its password
    rows: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"source": str(self.source), "target": self.target, "rows": self.rows}


def _sqlite_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


async def _pg_columns(conn: Any, table: str) -> dict[str, str]:
    cur = await conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = %s AND table_schema = current_schema()",
                             (table,))
    return {str(name): str(kind) for name, kind in await cur.fetchall()}


def _converter(pg_type: str) -> Callable[[Any], Any]:
    """SQLite keeps whatever type a value had; PostgreSQL wants its column's."""
    if pg_type == "text":
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    if pg_type == "double precision":
        return lambda v: v if v is None else float(v)
    if pg_type in ("bigint", "integer"):
        return lambda v: v if v is None else int(v)
    return lambda v: v  # jsonb: SQLite's JSON text


async def copy_sqlite_to_postgres(source: Path, url: str, now: float, host: str,
                                  progress: Callable[[str, int], None] | None = None
                                  ) -> CopyReport:
    """Copy the SQLite database at `source` (migrated to this version first) into the empty
    PostgreSQL database at `url` (created or migrated to this version). The run was one
    host's, `host`: its events are stamped with it, and the audio of its videos is there."""
    import psycopg

    db = SqliteDB(source, now=now)  # brings an older file to this version's schema
    db.close()
    target = PostgresStore(url, now, pool_size=1)
    await target.open()  # the schema, under the migration lock
    await target.close()
    report = CopyReport(source, redact(url))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        src.execute("BEGIN")  # one snapshot of the source for the whole copy
        async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
            for table in TABLES:
                cur = await conn.execute(f"SELECT count(*) FROM {table}")
                row = await cur.fetchone()
                if row and row[0]:
                    raise CopyRefused(f"{report.target} already holds {row[0]} rows in "
                                      f"{table}: copy into an empty database (create one, "
                                      "e.g. `createdb ytpiped`, and give its URL)")
            for table in TABLES:
                report.rows[table] = await _copy_table(src, conn, table, progress)
            await conn.execute("UPDATE videos SET audio_host = %s WHERE audio_path IS NOT NULL",
                               (host,))
            await conn.execute("UPDATE events SET host = %s", (host,))
            for table, column in IDENTITIES:
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"coalesce(max({column}), 0) + 1, false) FROM {table}")
            for table in TABLES:
                cur = await conn.execute(f"SELECT count(*) FROM {table}")
                got = await cur.fetchone()
                want = src.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                if got is None or got[0] != want or report.rows[table] != want:
                    raise CopyRefused(f"{table}: {want} rows in {source} but "
                                      f"{None if got is None else got[0]} copied; nothing "
                                      "was kept in the target")
    finally:
        src.close()
    return report


async def _copy_table(src: sqlite3.Connection, conn: Any, table: str,
                      progress: Callable[[str, int], None] | None) -> int:
    pg = await _pg_columns(conn, table)
    columns = [c for c in _sqlite_columns(src, table) if c in pg]
    select = ", ".join(columns)
    if table == "videos":  # SQLite's insertion order, which claims and listings follow
        select, columns = "rowid, " + select, ["seq", *columns]
    convert = [_converter(pg[c]) for c in columns]
    rows = src.execute(f"SELECT {select} FROM {table} ORDER BY {TABLES[table]}")
    n = 0
    async with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while batch := rows.fetchmany(BATCH):
            for r in batch:
                await copy.write_row([f(v) for f, v in zip(convert, r, strict=True)])
            n += len(batch)
            if progress is not None:
                progress(table, n)
    return n
