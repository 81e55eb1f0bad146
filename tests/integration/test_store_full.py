"""A full disk under the database (SQLite's real SQLITE_FULL, made by capping the
database's page count): writes wait and are kept, reads and `status` go on with an
ALERT, and everything resumes when space returns; nothing fails, no attempt is spent."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_worker import Outcomes, fast_settings, seed
from tests.waiting import until
from ytpiped import control
from ytpiped.daemon import Daemon
from ytpiped.store import NewVideo, SqliteDB, SqliteStore, db_path, is_store_full
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.stages import FakeStage

UNLIMITED = 1_073_741_823
STAGES = ("download", "analyze", "transcribe", "mine", "evaluate")


def capped(path: Path, now: float) -> SqliteDB:
    """Open the store with no room to grow: the next write that needs a page fails with
    SQLITE_FULL, exactly as on a full disk."""
    s = SqliteDB(path, now=now)
    pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
    s.conn.execute(f"PRAGMA max_page_count = {pages}")
    return s


def fill(path: Path, table_sql: str) -> None:
    """Fill every free byte of the database's pages (so even a small write needs a page)."""
    s = SqliteDB(path, now=0)
    pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
    s.conn.execute(f"PRAGMA max_page_count = {pages}")
    n = 0
    try:
        while True:
            s.conn.execute(table_sql, (f"filler{n:08d}", "x" * 40, 0.0))
            n += 1
    except sqlite3.OperationalError as exc:
        assert is_store_full(exc, path), exc
    s.close()


def test_sqlite_full_is_recognised(tmp_path: Path) -> None:
    with capped(tmp_path / "x.db", 0) as s:
        with pytest.raises(sqlite3.OperationalError) as err:
            s.add_videos([NewVideo(f"v{i:010d}", "u" * 50, "video") for i in range(5000)],
                         now=1)
        assert is_store_full(err.value, tmp_path / "x.db")
        assert not s.conn.in_transaction  # the failed transaction left nothing open
        assert s.counts()["queued"] == 0
    assert not is_store_full(sqlite3.OperationalError("no such table: x"), tmp_path / "x.db")


async def test_a_write_on_a_full_disk_waits_and_is_kept(tmp_path: Path) -> None:
    clock = FakeClock()
    full: list[bool] = []
    writable: list[bool] = []
    store = SqliteStore(tmp_path / "x.db", clock.now(), sleep=clock.sleep, retry_full_s=5.0,
                       on_full=lambda exc, first: full.append(first),
                       on_writable=lambda: writable.append(True), opener=capped)
    await store.open()
    videos = [NewVideo(f"v{i:010d}", "u" * 50, "video") for i in range(5000)]
    write = asyncio.create_task(store.add_videos(videos, now=1))
    await until(lambda: full == [True] and clock.next_deadline() is not None)
    assert (await store.counts())["queued"] == 0  # reads go on meanwhile
    clock.advance(5.0)  # still full: tried again, still waiting
    await until(lambda: full == [True, False] and clock.next_deadline() is not None)
    assert not write.done()
    await store.on_db(lambda s: s.conn.execute(f"PRAGMA max_page_count = {UNLIMITED}"))
    clock.advance(5.0)  # space is back
    assert await write == (5000, 0)
    assert writable == [True]
    assert (await store.counts())["queued"] == 5000
    await store.close()


async def test_when_one_kept_write_goes_through_the_others_go_at_once(tmp_path: Path) -> None:
    pauses: list[asyncio.Future[None]] = []

    async def sleep(_s: float) -> None:  # each pause ends only when the test says
        pauses.append(asyncio.get_running_loop().create_future())
        await pauses[-1]

    store = SqliteStore(tmp_path / "x.db", 0, sleep=sleep, retry_full_s=5.0, opener=capped)
    await store.open()
    writes = asyncio.gather(*(store.add_videos(
        [NewVideo(f"{w}{i:010d}", "u" * 50, "video") for i in range(3000)], now=1)
        for w in "ab"))
    await until(lambda: len(pauses) == 2, "both writes paused", task=writes)
    await store.on_db(lambda s: s.conn.execute(f"PRAGMA max_page_count = {UNLIMITED}"))
    pauses[0].set_result(None)  # the other pause never ends by itself
    async with asyncio.timeout(30):
        assert await writes == [(3000, 0), (3000, 0)]
    assert len(pauses) == 2 and pauses[1].cancelled()  # woken, not ended
    assert (await store.counts())["queued"] == 6000
    await store.close()


async def test_the_daemon_pauses_on_a_full_database_and_resumes(data_dir: Path) -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: errors.append(ctx))
    ids = [f"fullvideo{i:02d}" for i in range(40)]
    seed(data_dir, ids)
    clock = FakeClock()
    out = Outcomes()
    stages = [FakeStage(n, concurrency=2) for n in STAGES]
    d = Daemon(fast_settings(data_dir), stages=stages, environ={}, clock=clock,
               on_outcome=out, store_opener=capped)
    task = asyncio.create_task(d.serve())
    await until(lambda: "store" in d.live)
    raw = await control.fetch(data_dir, "/status")
    assert raw is not None
    alerts = json.loads(raw)["alerts"]
    assert any("is full" in a and str(data_dir) in a for a in alerts), alerts
    assert d.store is not None
    await d.store.on_db(lambda s: s.conn.execute(f"PRAGMA max_page_count = {UNLIMITED}"))
    clock.advance(5.0)
    await out.wait(lambda ev: sum(1 for e in ev if e[0] == "completed") == 5 * len(ids), 60)
    assert "store" not in d.live
    d.stop.set()
    assert await task == 0
    s = SqliteDB(db_path(data_dir), readonly=True)
    assert s.counts()["done"] == len(ids)
    assert s.conn.execute("SELECT max(attempts) FROM videos").fetchone()[0] == 0
    for stage in STAGES:
        got = s.conn.execute("SELECT count(*), count(DISTINCT video_id) FROM events WHERE "
                             "stage = ? AND event = 'completed'", (stage,)).fetchone()
        assert got == (len(ids), len(ids)), stage
    s.close()
    assert errors == []


async def test_a_start_on_a_full_disk_waits_for_space(data_dir: Path) -> None:
    seed(data_dir, ["startfull01"])
    fill(db_path(data_dir), "INSERT INTO daemon_state (key, value, updated_at) "
                            "VALUES (?, json_quote(?), ?)")
    clock = FakeClock()
    out = Outcomes()
    d = Daemon(fast_settings(data_dir), stages=[FakeStage("download")], environ={},
               clock=clock, on_outcome=out, store_opener=capped)
    task = asyncio.create_task(d.serve())
    await until(lambda: "store" in d.live)
    assert not d.ready.is_set() and not task.done()  # waiting, not exiting
    raw = await control.fetch(data_dir, "/status")  # status answers while it waits
    assert raw is not None and any("is full" in a for a in json.loads(raw)["alerts"])
    assert d.store is not None
    await d.store.on_db(lambda s: s.conn.execute(f"PRAGMA max_page_count = {UNLIMITED}"))
    clock.advance(5.0)
    await out.wait(lambda ev: ("completed", "startfull01", None) in ev)
    assert d.ready.is_set()
    d.stop.set()
    assert await task == 0


async def test_a_stop_while_start_waits_for_space_exits_cleanly(data_dir: Path) -> None:
    seed(data_dir, ["startfull02"])
    fill(db_path(data_dir), "INSERT INTO daemon_state (key, value, updated_at) "
                            "VALUES (?, json_quote(?), ?)")
    d = Daemon(fast_settings(data_dir), stages=[FakeStage("download")], environ={},
               clock=FakeClock(), store_opener=capped)
    task = asyncio.create_task(d.serve())
    await until(lambda: "store" in d.live)
    d.stop.set()
    async with asyncio.timeout(20):
        assert await task == 0
    assert not (data_dir / control.SOCKET_NAME).exists()
