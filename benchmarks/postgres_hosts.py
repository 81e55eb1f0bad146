"""Claims per second with 3 hosts x 8 workers on one PostgreSQL store against one host x 8
workers on SQLite, and `status` on 1,000,000 rows in PostgreSQL (and in SQLite).

Each worker loops claim -> complete (a fake stage that takes no time), so the numbers are
the store's own: round trips, locks, SKIP LOCKED. The three "hosts" are three
PostgresStore instances (own pools) in this one process; the server is the embedded
PostgreSQL 18 of the tests (fsync off), on this machine. Prints a table, then one JSON
object as the last line.

    python -m benchmarks.postgres_hosts [--claims 3000] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ytpiped import status as status_mod
from ytpiped.store import NewVideo, SqliteDB, SqliteStore, Store, db_path
from ytpiped.store.blocking import BlockingStore, StatusReader
from ytpiped.store.postgres import PostgresStore
from ytpiped.testing import pg_server

WORKERS = 8


async def drain(stores: list[Store], workers: int) -> tuple[int, float]:
    """Every store's `workers` claim and complete until nothing is left; (rows, seconds)."""
    done = 0

    async def worker(store: Store, owner: str) -> None:
        nonlocal done
        while rows := await store.claim("download", owner, time.time(), 60.0):
            for r in rows:
                await store.complete(r.id, owner, "downloading", "downloaded", time.time(),
                                     token=r.lease_token)
                done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(s, f"h{i}:{w}") for i, s in enumerate(stores)
                           for w in range(workers)))
    return done, time.perf_counter() - t0


def videos(n: int, prefix: str) -> list[NewVideo]:
    return [NewVideo(f"{prefix}{i:09d}", f"https://example.org/{i}", "video") for i in range(n)]


async def claims_postgres(url: str, n: int, hosts: int) -> tuple[int, float]:
    stores = [PostgresStore(url, time.time(), pool_size=WORKERS) for _ in range(hosts)]
    for s in stores:
        await s.open()
    try:
        await stores[0].add_videos(videos(n, "c"), time.time())
        return await drain(list(stores), WORKERS)
    finally:
        for s in stores:
            await s.close()


async def claims_sqlite(path: Path, n: int) -> tuple[int, float]:
    store = SqliteStore(path, time.time())
    await store.open()
    try:
        await store.add_videos(videos(n, "c"), time.time())
        return await drain([store], WORKERS)
    finally:
        await store.close()


def fill_postgres(url: str, n: int) -> float:
    """A run mid-way: half queued, most of the rest done, a tenth across the other states;
    an event for every fifth video."""
    import psycopg

    t0 = time.perf_counter()
    reader = BlockingStore.opened(PostgresStore(url, time.time()))
    reader.add_videos(videos(n, "s"), time.time())
    reader.close()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE videos SET state = CASE WHEN seq % 10 = 0 THEN (ARRAY['queued',"
                     "'downloading','downloaded','analyzing','analyzed','transcribing',"
                     "'transcribed','mining','mined','evaluating'])[(seq / 10) % 10 + 1] "
                     "WHEN seq % 2 = 1 THEN 'queued' ELSE 'done' END, duration_s = 600")
        conn.execute("INSERT INTO events (at, video_id, stage, event) SELECT "
                     "extract(epoch FROM now()) - g, 's' || g, 'download', 'completed' "
                     "FROM generate_series(1, %s) g", (n // 5,))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def fill_sqlite(path: Path, n: int) -> float:
    t0 = time.perf_counter()
    db = SqliteDB(path, now=time.time())
    db.add_videos(videos(n, "s"), time.time())
    with db.conn:
        db.conn.execute("UPDATE videos SET state = CASE WHEN rowid % 10 = 0 THEN "
                        "json_extract('[\"queued\",\"downloading\",\"downloaded\",\"analyzing\","
                        "\"analyzed\",\"transcribing\",\"transcribed\",\"mining\",\"mined\","
                        "\"evaluating\"]', '$[' || ((rowid / 10) % 10) || ']') "
                        "WHEN rowid % 2 = 1 THEN 'queued' ELSE 'done' END, duration_s = 600")
        db.conn.executemany("INSERT INTO events (at, video_id, stage, event) VALUES "
                            "(?, ?, 'download', 'completed')",
                            [(time.time() - i, f"s{i}") for i in range(n // 5)])
    db.conn.execute("ANALYZE")
    db.close()
    return time.perf_counter() - t0


def time_build(reader: StatusReader, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        status_mod.build(reader, time.time(), None)
        out.append(time.perf_counter() - t0)
    return out


def time_cli(data: Path, url: str | None, runs: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    if url:
        env["YTPIPED_STORE__URL"] = url
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ytpiped", "--data-dir", str(data), "status",
                        "--json"], env=env, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--claims", type=int, default=3000, help="rows claimed and completed")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows for the status timing")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    server = pg_server.start()
    result: dict[str, Any] = {"claims": args.claims, "rows": args.rows, "workers": WORKERS}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            pg_n, pg_s = asyncio.run(claims_postgres(server.database("bench"), args.claims, 3))
            sq_n, sq_s = asyncio.run(claims_sqlite(data / "claims.db", args.claims))
            url = server.database("status")
            fill_pg = fill_postgres(url, args.rows)
            reader = BlockingStore.opened(PostgresStore(url, time.time(), readonly=True))
            pg_build = time_build(reader, args.runs)
            reader.close()
            pg_cli = time_cli(data / "pgdata", url, args.runs)
            fill_sq = fill_sqlite(db_path(data / "sq"), args.rows)
            sq_reader = SqliteDB(db_path(data / "sq"), readonly=True)
            sq_build = time_build(sq_reader, args.runs)
            sq_reader.close()
            sq_cli = time_cli(data / "sq", None, args.runs)
    finally:
        server.stop()
    pg_rate, sq_rate = pg_n / pg_s, sq_n / sq_s
    med = statistics.median
    rows = [
        ("claim+complete, PostgreSQL", f"3 hosts x {WORKERS}", f"{pg_rate:,.0f} /s",
         f"{pg_n} rows in {pg_s:.2f} s"),
        ("claim+complete, SQLite", f"1 host x {WORKERS}", f"{sq_rate:,.0f} /s",
         f"{sq_n} rows in {sq_s:.2f} s"),
        ("status build, PostgreSQL", f"{args.rows:,} rows", f"{med(pg_build)*1000:.0f} ms",
         f"filled in {fill_pg:.1f} s"),
        ("status --json CLI, PostgreSQL", f"{args.rows:,} rows", f"{med(pg_cli)*1000:.0f} ms",
         "no daemon: reads the database"),
        ("status build, SQLite", f"{args.rows:,} rows", f"{med(sq_build)*1000:.0f} ms",
         f"filled in {fill_sq:.1f} s"),
        ("status --json CLI, SQLite", f"{args.rows:,} rows", f"{med(sq_cli)*1000:.0f} ms",
         "no daemon: reads the database"),
    ]
    for r in rows:
        print(f"{r[0]:<32}{r[1]:>16}{r[2]:>12}   {r[3]}")
    result.update({
        "postgres_claims_per_s": round(pg_rate, 1), "sqlite_claims_per_s": round(sq_rate, 1),
        "postgres_over_sqlite": round(pg_rate / sq_rate, 3),
        "postgres_status_build_ms": round(med(pg_build) * 1000, 1),
        "postgres_status_cli_ms": round(med(pg_cli) * 1000, 1),
        "sqlite_status_build_ms": round(med(sq_build) * 1000, 1),
        "sqlite_status_cli_ms": round(med(sq_cli) * 1000, 1)})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
