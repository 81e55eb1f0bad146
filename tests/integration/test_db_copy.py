"""`ytpiped db copy --to postgresql://…` moves a SQLite run into PostgreSQL without losing a
row, an attempt count, an event, a part, a speed sample or a daemon-state entry; and the
other CLI commands on a PostgreSQL `store.url` (migrate, add, status, retry; check and
backup say they are SQLite's)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ytpiped import cli
from ytpiped.states import STAGES
from ytpiped.store import Event, NewVideo, PerfSample, SqliteDB, db_path
from ytpiped.store.blocking import BlockingStore
from ytpiped.store.pg_schema import SCHEMA_VERSION as PG_VERSION
from ytpiped.store.postgres import PostgresStore
from ytpiped.store.schema import SCHEMA_VERSION

TABLE_ORDER = {"events": "id", "parts": "video_id, kind, idx", "perf_samples": "id",
               "daemon_state": "key"}


def sqlite_run(data_dir: Path) -> None:
    """A run with something of everything: finished, failed, retried, in-progress rows,
    a playlist and its children, parts, events, speed samples and daemon state."""
    db = SqliteDB(db_path(data_dir), now=1.0)
    ids = [f"copy{i:07d}" for i in range(120)]
    db.add_videos([NewVideo(i, f"https://example.org/{i}", "video") for i in ids], now=1.5)
    db.add_videos([NewVideo("playlist:PL1", "https://example.org/pl", "playlist")], now=2.0)
    db.add_videos([NewVideo("child000001", "https://example.org/c1", "video")], now=2.5,
                  parent_id="playlist:PL1")
    t = 10.0
    for n, vid in enumerate(ids[:60]):  # walk some through the stages
        for stage, st in list(STAGES.items())[: 1 + n % len(STAGES)]:
            (row,) = [r for r in db.claim(stage, "host:1", now=t, lease_s=60, limit=200)
                      if r.id == vid]
            for other in db.videos(st.running.value, limit=500):
                if other.id != vid:
                    db.release(other.id, "host:1", st.running.value, now=t)
            if stage == "transcribe":
                db.save_part(vid, "chunk", 0, {"text": f"hello {vid}", "words": [1.5, 2]},
                             now=t, token=row.lease_token)
                db.save_part(vid, "chunk", 1, {"text": "ünïcode ✓"}, now=t,
                             token=row.lease_token)
            db.complete(vid, "host:1", st.running.value, st.finished.value, now=t + 1,
                        fields={"title": f"T {vid}", "duration_s": 61.25 + n,
                                "size_bytes": 1000 + n, "upload_date": "20240102",
                                "audio_path": f"audio/{vid}.m4a"} if stage == "download" else {},
                        info={stage: {"n": n, "ok": True, "nested": {"x": [n, None]}}},
                        event=Event("completed", stage), token=row.lease_token)
            t += 2
    for vid in ids[60:70]:  # failures with attempts spent
        (row,) = [r for r in db.claim("download", "host:1", now=t, lease_s=60, limit=200)
                  if r.id == vid]
        for other in db.videos("downloading", limit=500):
            if other.id != vid:
                db.release(other.id, "host:1", "downloading", now=t)
        db.release(vid, "host:1", "downloading", now=t, spend_attempt=True, kind="network",
                   error="reset", next_attempt_at=t + 30,
                   event=Event("retry", "download", "network", "reset"))
        (row,) = [r for r in db.claim("download", "host:1", now=t + 31, lease_s=60, limit=200)
                  if r.id == vid]
        for other in db.videos("downloading", limit=500):
            if other.id != vid:
                db.release(other.id, "host:1", "downloading", now=t + 31)
        db.fail(vid, "host:1", "downloading", now=t + 32, kind="forbidden", error="HTTP 403",
                event=Event("failed", "download", "forbidden", "HTTP 403"))
        t += 40
    db.claim("download", "deadhost:9", now=t, lease_s=60, limit=3)  # in flight at the copy
    db.record_event(t, "cooldown", stage="download", kind="rate_limited", message="429")
    db.add_perf_samples([PerfSample("cpu", "tiny.en", "int8", b, 10.0 * b, 1.0 + b / 7, t + b)
                         for b in range(1, 9)])
    db.set_state("daemon", {"pid": None, "stopped_at": t}, t)
    db.set_state("stage:download", {"phase": "steady", "breaker": {"state": "closed"},
                                    "next_download_at": t + 300.5}, t)
    db.set_state("request:download", {"action": "pause", "at": t}, t)
    db.close()


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    out: dict[str, list[tuple[Any, ...]]] = {}
    cols = [r[1] for r in conn.execute("PRAGMA table_info(videos)")]
    out["videos"] = [tuple(json.loads(v) if c == "info" else v for c, v in zip(
        ["seq", *cols], r, strict=True)) for r in conn.execute(
        f"SELECT rowid, {', '.join(cols)} FROM videos ORDER BY rowid")]
    for table, order in TABLE_ORDER.items():
        out[table] = list(conn.execute(f"SELECT * FROM {table} ORDER BY {order}"))
    conn.close()
    return out


def pg_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'videos' "
            "ORDER BY ordinal_position").fetchall() if r[0] not in ("seq", "audio_host")]
        out: dict[str, list[tuple[Any, ...]]] = {"videos": list(conn.execute(
            f"SELECT seq, {', '.join(cols)} FROM videos ORDER BY seq").fetchall())}
        for table, order in TABLE_ORDER.items():
            scols = {"events": "id, at, video_id, stage, event, kind, message",
                     "parts": "video_id, kind, idx, data, updated_at",
                     "perf_samples": "id, at, device_kind, model, compute_type, batch_size, "
                                     "audio_s, elapsed_s",
                     "daemon_state": "key, value, updated_at"}[table]
            out[table] = list(conn.execute(f"SELECT {scols} FROM {table} ORDER BY {order}"))
    return out


def run_cli(*args: str) -> int:
    return cli.main(list(args))


def test_db_copy_moves_every_row_and_the_copy_goes_on_working(
        data_dir: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    sqlite_run(data_dir)
    want = sqlite_tables(db_path(data_dir))
    assert all(want[t] for t in want)  # the run has rows in every table
    assert run_cli("--data-dir", str(data_dir), "--set", "daemon.host_id=copyhost", "db", "copy",
                   "--to", pg_url, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == {t: len(rows) for t, rows in want.items()}
    with psycopg.connect(pg_url) as conn:  # the run was this host's: its audio is here
        host = conn.execute("SELECT DISTINCT host FROM events").fetchall()
        audio = conn.execute("SELECT audio_host, count(*) FROM videos GROUP BY 1 "
                             "ORDER BY 1").fetchall()
    assert host == [("copyhost",)] and audio == [("copyhost", 60), (None, 62)]
    got = pg_tables(pg_url)
    assert set(got) == set(want)
    for table in want:  # row by row, every column
        assert got[table] == want[table], table
    # the same rows through both stores' interfaces
    sq = SqliteDB(db_path(data_dir), readonly=True)
    pg = BlockingStore.opened(PostgresStore(pg_url, readonly=True))
    try:
        assert pg.videos(limit=10**6) == sq.videos(limit=10**6)
        assert pg.counts() == sq.counts() and pg.failures_by_kind() == sq.failures_by_kind()
        assert pg.all_state() == sq.all_state()
        for vid in ("copy0000005", "copy0000065"):
            assert pg.call(pg.store.events_of(vid)) == sq.events_of(vid)
            assert pg.call(pg.store.load_parts(vid, "chunk")) == sq.load_parts(vid, "chunk")
        assert pg.call(pg.store.perf_samples()) == sq.perf_samples()
        # new rows go after the copied ones (the identity sequences were moved on)
        pg.add_videos([NewVideo("after000001", "u", "video")], now=1e6)
        pg.call(pg.store.record_event(1e6, "added"))
        assert pg.videos(limit=10**6)[-1].id == "after000001"
        last = pg_tables(pg_url)["events"][-1]
        assert last[0] == want["events"][-1][0] + 1 and last[4] == "added"
    finally:
        sq.close()
        pg.close()


def test_db_copy_refuses_a_database_that_is_not_empty_and_keeps_nothing(
        data_dir: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    sqlite_run(data_dir)
    pg = BlockingStore.opened(PostgresStore(pg_url))
    pg.add_videos([NewVideo("already0001", "u", "video")], now=1)
    pg.close()
    assert run_cli("--data-dir", str(data_dir), "db", "copy", "--to", pg_url) == 1
    err = capsys.readouterr().err
    assert "already holds 1 rows in videos" in err and "empty database" in err
    assert [r[1] for r in pg_tables(pg_url)["videos"]] == ["already0001"]


def test_db_copy_needs_the_daemon_stopped_and_a_postgres_url(
        data_dir: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ytpiped.lock import acquire_lock

    sqlite_run(data_dir)
    assert run_cli("--data-dir", str(data_dir), "db", "copy", "--to", "sqlite:///x") == 2
    assert "postgresql:// URL" in capsys.readouterr().err
    held = acquire_lock(data_dir)
    try:
        assert run_cli("--data-dir", str(data_dir), "db", "copy", "--to", pg_url) == 3
        assert "stop it first" in capsys.readouterr().err
    finally:
        held.close()


def test_cli_commands_on_a_postgres_store(data_dir: Path, pg_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data-dir", str(data_dir), "--set", f"store.url={pg_url}"]
    assert run_cli(*base, "db", "migrate") == 0
    assert f"schema version 0 -> {PG_VERSION}" in capsys.readouterr().out
    assert run_cli(*base, "db", "migrate", "--json") == 0
    assert json.loads(capsys.readouterr().out)["from_version"] == PG_VERSION
    assert run_cli(*base, "add", "dQw4w9WgXcQ", "https://youtu.be/9bZkp7q19f0") == 0
    assert "added 2" in capsys.readouterr().out
    assert run_cli(*base, "status", "--json") == 0
    st = json.loads(capsys.readouterr().out)
    assert st["videos"]["by_state"]["queued"] == 2 and not st["daemon"]["running"]
    assert run_cli(*base, "retry", "--json") == 0
    assert json.loads(capsys.readouterr().out)["requeued"] == 0
    for sub in (["check"], ["backup", str(data_dir / "b.db")]):
        assert run_cli(*base, "db", *sub) == 2
        assert "SQLite store only" in capsys.readouterr().err
    assert not db_path(data_dir).exists()


def test_db_migrate_on_sqlite(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--data-dir", str(data_dir), "db", "migrate") == 0
    out = capsys.readouterr().out
    assert str(db_path(data_dir)) in out and f"-> {SCHEMA_VERSION}" in out
    assert run_cli("--data-dir", str(data_dir), "db", "migrate") == 0
    assert "up to date" in capsys.readouterr().out


def test_an_unreachable_postgres_store_is_a_clear_error(
        data_dir: Path, pg_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_server.url("postgres").replace("postgres@", "me:s3cret@").replace(
        f":{pg_server.port}/", ":1/")
    assert run_cli("--data-dir", str(data_dir), "--set", f"store.url={url}", "add",
                   "dQw4w9WgXcQ") == 1
    err = capsys.readouterr().err
    assert "cannot connect to the PostgreSQL store" in err and "store.url" in err
    assert "s3cret" not in err


def test_doctor_checks_a_postgres_store(data_dir: Path, pg_url: str, pg_server: Any) -> None:
    from ytpiped import config, doctor

    def check(url: str) -> doctor.Check:
        return doctor.database(config.load(flags={"data_dir": str(data_dir),
                                                  "store.url": url}))

    fresh = check(pg_url)
    assert (fresh.status, "no schema yet" in fresh.detail) == (doctor.OK, True)
    assert run_cli("--data-dir", str(data_dir), "--set", f"store.url={pg_url}", "db",
                   "migrate") == 0
    ready = check(pg_url)
    assert (ready.status, "schema up to date" in ready.detail) == (doctor.OK, True)
    down = check(pg_server.url().replace("postgres@", "me:s3cret@").replace(
        f":{pg_server.port}/", ":1/"))
    assert down.status == doctor.FAIL and "s3cret" not in down.detail + down.fix
