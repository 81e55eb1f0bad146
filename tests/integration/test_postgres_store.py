"""PostgresStore beyond the contract suite, on a real PostgreSQL server: leases on the
database's clock, claims by several hosts at once, migrations of hosts starting together,
what a missing or unreachable database says, and the daemon running on it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_worker import Outcomes, fast_settings
from ytpiped.daemon import Daemon
from ytpiped.errors import InvalidTransition
from ytpiped.store import NewVideo, StoreNotReady, StoreUnavailable
from ytpiped.store.pg_schema import SCHEMA_VERSION
from ytpiped.store.postgres import PostgresStore, redact
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.stages import FakeStage

IDS = [f"pgvid{i:06d}" for i in range(40)]


async def opened(url: str, **kw: object) -> PostgresStore:
    store = PostgresStore(url, 0.0, **kw)  # type: ignore[arg-type]
    await store.open()
    return store


async def db_now(url: str) -> float:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
        row = await cur.fetchone()
        assert row is not None
        return float(row[0])


async def test_leases_follow_the_database_clock_not_the_hosts(pg_url: str) -> None:
    """A host whose clock is a day ahead cannot expire a live lease; a host whose clock is
    a day behind still leases for lease_s; a lease past the server's now is reaped by any
    host, whatever its clock says."""
    ahead, behind = FakeClock(start=2e9), FakeClock(start=1e9)
    a = await opened(pg_url, clock=ahead)
    b = await opened(pg_url, clock=behind)
    try:
        await a.add_videos([NewVideo(i, f"u/{i}", "video") for i in IDS[:3]], now=ahead.now())
        (live,) = await b.claim("download", "b:1", now=behind.now(), lease_s=600)
        t0 = await db_now(pg_url)
        assert live.lease_until is not None and t0 + 590 < live.lease_until < t0 + 610
        assert await a.reap(now=ahead.now() + 86400) == 0  # a day ahead: still live
        # b renews "until its now + 900": the server leases 900 s from its own now
        assert await b.renew(live.id, "b:1", "downloading", behind.now() + 900,
                             token=live.lease_token)
        got = await a.get(live.id)
        assert got is not None and got.lease_until is not None
        assert t0 + 890 < got.lease_until < await db_now(pg_url) + 910
        # a lease whose time is up by the server's clock: reaped by a host a day behind
        (dead,) = await a.claim("download", "a:1", now=ahead.now(), lease_s=-1)
        assert await b.reap(now=behind.now()) == 1
        back = await a.get(dead.id)
        assert back is not None and (back.state, back.lease_owner, back.attempts) == \
            ("queued", None, 0)
        assert await a.renew_many([(live.id, "downloading", live.lease_token)], "a:1",
                                  until=ahead.now() + 30) == 0  # not a's
        assert await b.renew_many([(live.id, "downloading", live.lease_token)], "b:1",
                                  until=behind.now() + 30) == 1
    finally:
        await a.close()
        await b.close()


async def test_three_hosts_claiming_at_once_take_every_row_exactly_once(pg_url: str) -> None:
    hosts = [await opened(pg_url, db_clock=True, pool_size=8) for _ in range(3)]
    try:
        await hosts[0].add_videos([NewVideo(i, f"u/{i}", "video") for i in IDS], now=1.0)
        claimed: list[tuple[str, str]] = []

        async def worker(store: PostgresStore, owner: str) -> None:
            while rows := await store.claim("download", owner, now=2.0, lease_s=60):
                claimed.extend((r.id, owner) for r in rows)
                assert rows[0].lease_token == 1

        await asyncio.gather(*(worker(h, f"h{n}:{w}") for n, h in enumerate(hosts)
                               for w in range(8)))
        assert sorted(i for i, _ in claimed) == IDS  # each once: SKIP LOCKED, no duplicates
        assert (await hosts[1].counts())["downloading"] == len(IDS)
    finally:
        for h in hosts:
            await h.close()


async def test_hosts_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, 0.0) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert await stores[0].check() == "ok"
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cur = await conn.execute("SELECT version FROM schema_version ORDER BY version")
            assert [r[0] for r in await cur.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        for s in stores:
            await s.close()


async def test_a_reader_finds_no_schema_and_a_wrong_url_is_named_without_its_password(
        pg_url: str, pg_server: object) -> None:
    with pytest.raises(StoreNotReady):
        await PostgresStore(pg_url, readonly=True).open()
    url = pg_url.replace("postgres@", "postgres:hunter2@").rsplit("/", 1)[0] + "/nosuchdb"
    with pytest.raises(StoreUnavailable) as err:
        await PostgresStore(url, connect_timeout_s=5).open()
    text = str(err.value)
    assert "hunter2" not in text and "postgres:***@" in text and "store.url" in text
    assert "nosuchdb" in text  # the server's own words say what is missing
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


async def test_info_merge_patch_and_fenced_parts_on_the_server(pg_url: str) -> None:
    s = await opened(pg_url)
    try:
        await s.add_videos([NewVideo("patch000001", "u", "video")], now=1)
        (row,) = await s.claim("download", "w", now=1, lease_s=60)
        await s.complete(row.id, "w", "downloading", "downloaded", now=2,
                         info={"a": {"b": [1, 2], "c": "x"}, "n": 1.5})
        (row,) = await s.claim("analyze", "w", now=3, lease_s=60)
        await s.save_part(row.id, "chunk", 0, {"t": "é"}, now=3, token=row.lease_token)
        await s.complete(row.id, "w", "analyzing", "analyzed", now=4,
                         info={"a": {"c": None, "d": {"e": True}}, "n": None})
        got = await s.get(row.id)
        assert got is not None and got.info == {"a": {"b": [1, 2], "d": {"e": True}}}
        with pytest.raises(InvalidTransition):
            await s.save_part(row.id, "chunk", 1, {}, now=5, token=row.lease_token)
        assert await s.load_parts(row.id, "chunk") == {0: {"t": "é"}}
    finally:
        await s.close()


async def test_the_daemon_runs_the_pipeline_on_postgres(data_dir: Path, pg_url: str) -> None:
    """`store.url` picks PostgreSQL: the daemon claims, leases and completes there, records
    itself, and the control API reads status through its pool."""
    seeder = await opened(pg_url)
    await seeder.add_videos([NewVideo(i, f"https://example.org/{i}", "video")
                             for i in IDS[:5]], now=0)
    await seeder.close()
    outcomes = Outcomes()
    settings = fast_settings(data_dir, **{"store.url": pg_url, "daemon.host_id": "pg-host-1"})
    d = Daemon(settings, stages=[FakeStage("download", concurrency=2)], environ={},
               on_outcome=outcomes)
    task = asyncio.create_task(d.serve())
    try:
        async with asyncio.timeout(30):
            await outcomes.wait(lambda ev: sum(e[0] == "completed" for e in ev) == 5)
        assert d.owner.startswith("pg-host-1:")
        from ytpiped import control

        raw = await control.fetch(data_dir)
        assert raw is not None
        st = json.loads(raw)
        assert st["videos"]["by_state"]["downloaded"] == 5 and st["daemon"]["running"]
        (host,) = st["hosts"]  # its heartbeat, from the start on
        assert (host["host"], host["silent"], host["pid"]) == ("pg-host-1", False,
                                                               __import__("os").getpid())
        metrics = (await control.fetch(data_dir, "/metrics") or b"").decode()
        assert 'ytpiped_host_silent{host="pg-host-1"} 0.0' in metrics
        assert not (data_dir / "ytpiped.db").exists()  # nothing went to SQLite
    finally:
        d.stop.set()
        assert await task == 0
    check = await opened(pg_url)
    try:
        state = await check.get_state("daemon")
        assert state is not None and state[0]["pid"] is None
        assert (await check.counts())["downloaded"] == 5
    finally:
        await check.close()


async def test_audio_stays_with_the_host_that_downloaded_it(pg_url: str) -> None:
    """Without shared files, analysis and transcription are claimed only where the audio
    is, and each host counts its own buffer; with shared files any host takes any video.
    Mining and evaluation read results the store keeps (ytpiped.outputs): any host."""
    a = await opened(pg_url, host="a", shared_files=False)
    b = await opened(pg_url, host="b", shared_files=False)
    anyone = await opened(pg_url, host="c", shared_files=True)
    try:
        await a.add_videos([NewVideo(i, f"u/{i}", "video") for i in IDS[:2]], now=1)
        (row,) = await a.claim("download", "a:1", now=2, lease_s=60)
        await a.complete(row.id, "a:1", "downloading", "downloaded", now=3,
                         fields={"audio_path": f"audio/{row.id}.m4a", "size_bytes": 10})
        assert await b.claim("analyze", "b:1", now=4, lease_s=60) == []
        assert await b.next_ready_at("analyze") is None
        assert await a.buffer_stats() == (1, 10) and await b.buffer_stats() == (0, 0)
        assert await anyone.buffer_stats() == (1, 10)  # one shared disk: every video counts
        (mine,) = await a.claim("analyze", "a:1", now=5, lease_s=60)
        await a.complete(mine.id, "a:1", "analyzing", "analyzed", now=6)
        assert await b.claim("transcribe", "b:1", now=7, lease_s=60) == []
        (tr,) = await a.claim("transcribe", "a:1", now=7, lease_s=60)
        await a.complete(tr.id, "a:1", "transcribing", "transcribed", now=8)
        (mi,) = await b.claim("mine", "b:1", now=9, lease_s=60)  # the transcript: in the store
        assert mi.id == row.id
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cur = await conn.execute("SELECT host, event FROM events ORDER BY id")
            assert await cur.fetchall() == []  # no event was asked for
        await b.record_event(10, "note", video_id=row.id)
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cur = await conn.execute("SELECT host FROM events")
            assert await cur.fetchall() == [("b",)]
        await b.release(mi.id, "b:1", "mining", now=11)
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            await conn.execute("UPDATE daemon_state SET updated_at = 0")  # a is long silent
        # transcribed: nothing of it is lost with a's disk
        assert await b.requeue_lost_audio(now=12, silent_s=300) == []
    finally:
        for s in (a, b, anyone):
            await s.close()


async def test_audio_of_a_silent_host_goes_back_to_download(pg_url: str) -> None:
    a = await opened(pg_url, host="a", shared_files=False)
    b = await opened(pg_url, host="b", shared_files=False)
    try:
        await a.add_videos([NewVideo(i, f"u/{i}", "video") for i in IDS[:3]], now=1)
        for owner, store in (("a:1", a), ("b:1", b)):
            (row,) = await store.claim("download", owner, now=2, lease_s=60)
            await store.complete(row.id, owner, "downloading", "downloaded", now=3,
                                 fields={"audio_path": f"audio/{row.id}.m4a"})
        await a.heartbeat("a", {"pid": 1})
        await b.heartbeat("b", {"pid": 2})
        assert await b.requeue_lost_audio(now=4, silent_s=300) == []  # both alive
        hosts = await b.hosts()
        assert set(hosts) == {"a", "b"} and hosts["a"][0] == {"pid": 1}
        assert all(0 <= age < 60 for _, _, age in hosts.values())
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            await conn.execute("UPDATE daemon_state SET updated_at = updated_at - 301 "
                               "WHERE key = 'host:a'")  # a has been silent for 5 minutes
        lost = await b.requeue_lost_audio(now=5, silent_s=300)
        assert lost == [IDS[0]]
        got = await b.get(IDS[0])
        assert got is not None and (got.state, got.audio_path, got.attempts) == \
            ("queued", None, 0)
        assert (await b.events_of(IDS[0]))[-1][2:4] == ("audio_lost", "host_silent")
        (again,) = await b.claim("download", "b:1", now=6, lease_s=60)  # b downloads it
        assert again.id == IDS[0]
    finally:
        await a.close()
        await b.close()


async def test_listen_wakes_other_hosts_when_work_becomes_ready(pg_url: str) -> None:
    a = await opened(pg_url, host="a")
    b = await opened(pg_url, host="b")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = asyncio.create_task(b.listen(heard.put_nowait))
    try:
        async with asyncio.timeout(20):
            assert await heard.get() == "*"  # listening (anything missed: look)
            await a.add_videos([NewVideo(IDS[0], "u", "video")], now=1)
            assert await heard.get() == "queued"
            (row,) = await a.claim("download", "a:1", now=2, lease_s=60)
            await a.complete(row.id, "a:1", "downloading", "downloaded", now=3)
            assert await heard.get() == "downloaded"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await a.close()
        await b.close()


async def test_a_version_4_database_gains_the_video_index_filled_as_sqlite_fills_it(
        pg_url: str) -> None:
    """Migration 5 builds each video row's document in SQL exactly as store.search.video_doc
    does (the SQLite migration calls that function)."""
    from tests.integration.test_store import META
    from ytpiped.store.pg_schema import MIGRATIONS
    from ytpiped.store.search import SearchQuery, parse, video_doc

    rows = [("withmeta001", "video", "Island walk", "Science Hour", "20240105",
             {"meta": META}),
            ("oldtitle001", "generic", "Garden  talk", "Home Show", "20230610", {}),
            ("channelonly", "video", None, None, None, {"meta": {"uploader": "Ann", "tags": 3,
                                                                 "chapters": {}}}),
            ("PLlist00001", "playlist", "A playlist about volcanoes", None, None, {}),
            ("queued00001", "video", None, None, None, {}),
            ("badinfo0001", "video", None, None, None, {"meta": "not an object"})]
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        await conn.execute("CREATE TABLE schema_version (version integer NOT NULL, "
                           "applied_at double precision NOT NULL)")
        for version in range(1, 5):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (version,))
        for vid, kind, title, channel, date, info in rows:
            await conn.execute(
                "INSERT INTO videos (id, url, kind, state, title, channel, upload_date, info, "
                "created_at, updated_at) VALUES (%s, 'u', %s, 'done', %s, %s, %s, %s, 0, 0)",
                (vid, kind, title, channel, date, json.dumps(info)))
        await conn.commit()
    s = await opened(pg_url)
    try:
        async def found(text: str, **kw: object) -> list[tuple[str, str | None]]:
            return [(h.video_id, h.field) for h in await s.search(
                SearchQuery(parse(text), "videos", **kw))]  # type: ignore[arg-type]

        assert await found("volcanoes") == [("withmeta001", "description")]
        assert await found("lava") == [("withmeta001", "tags")]
        assert await found("magma") == [("withmeta001", "chapters")]
        assert await found("garden") == [("oldtitle001", "title")]
        assert await found("ann") == [("channelonly", "channel")]
        assert await found("volcanoes", channel="science hour", since="20240101") == \
            [("withmeta001", "description")]
        assert (await s.search_counts())["metadata"] == 3
        got = {r[0]: tuple(r[1:]) for r in await s._all(
            "SELECT video_id, title, tags, chapters, channel, description FROM search_videos")}
        assert got == {vid: video_doc(info.get("meta"), title, channel).texts()
                       for vid, _, title, channel, _, info in rows[:3]}
    finally:
        await s.close()
