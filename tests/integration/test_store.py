from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ytpiped.errors import InvalidTransition
from ytpiped.store import NewVideo, SqliteDB
from ytpiped.store.schema import SCHEMA_VERSION


@pytest.fixture
def store(tmp_path: Path) -> SqliteDB:
    s = SqliteDB(tmp_path / "y.db", now=1.0)
    s.add_videos([NewVideo(f"vid{i:08d}", f"u{i}", "video") for i in range(3)], now=1.0)
    return s


def test_wal_and_schema_version(store: SqliteDB) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    v = store.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    assert v == SCHEMA_VERSION


def test_reopen_does_not_migrate_twice(tmp_path: Path, store: SqliteDB) -> None:
    store.close()
    again = SqliteDB(tmp_path / "y.db", now=2.0)
    assert again.conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == \
        SCHEMA_VERSION
    assert again.counts()["queued"] == 3


def test_claim_is_guarded_and_ordered(store: SqliteDB) -> None:
    a = store.claim("download", "w1", now=10, lease_s=60, limit=2)
    assert [r.id for r in a] == ["vid00000000", "vid00000001"]
    assert all(r.state == "downloading" and r.lease_owner == "w1" for r in a)
    b = store.claim("download", "w2", now=10, lease_s=60, limit=5)
    assert [r.id for r in b] == ["vid00000002"]
    assert store.claim("download", "w2", now=10, lease_s=60) == []


def test_complete_requires_state_and_owner(store: SqliteDB) -> None:
    (row,) = store.claim("download", "w1", now=10, lease_s=60)
    with pytest.raises(InvalidTransition, match="matched no row"):
        store.complete(row.id, "intruder", "downloading", "downloaded", now=11)
    with pytest.raises(InvalidTransition, match="not allowed"):
        store.complete(row.id, "w1", "downloading", "transcribed", now=11)
    store.complete(row.id, "w1", "downloading", "downloaded", now=11,
                   fields={"title": "T", "duration_s": 12.5}, info={"a": {"b": 1}})
    got = store.get(row.id)
    assert got is not None
    assert (got.state, got.title, got.duration_s, got.info, got.lease_owner) == \
        ("downloaded", "T", 12.5, {"a": {"b": 1}}, None)
    with pytest.raises(InvalidTransition):  # already moved on: zero rows changed
        store.complete(row.id, "w1", "downloading", "downloaded", now=12)


def test_unknown_outcome_field_is_rejected(store: SqliteDB) -> None:
    (row,) = store.claim("download", "w1", now=10, lease_s=60)
    with pytest.raises(ValueError, match="unknown outcome fields"):
        store.complete(row.id, "w1", "downloading", "downloaded", now=11, fields={"state": "x"})


def test_release_spends_attempt_only_when_asked(store: SqliteDB) -> None:
    (row,) = store.claim("download", "w1", now=10, lease_s=60)
    store.release(row.id, "w1", "downloading", now=11, next_attempt_at=100)
    got = store.get(row.id)
    assert got is not None and (got.state, got.attempts, got.next_attempt_at) == \
        ("queued", 0, 100)
    assert all(r.id != row.id for r in store.claim("download", "w1", now=50, lease_s=60,
                                                   limit=5))
    (again,) = store.claim("download", "w1", now=100, lease_s=60)
    store.release(again.id, "w1", "downloading", now=101, spend_attempt=True, kind="network",
                  error="boom")
    got = store.get(row.id)
    assert got is not None and (got.attempts, got.error_kind, got.error) == (1, "network", "boom")


def test_reaper_returns_expired_leases_without_attempt(store: SqliteDB) -> None:
    rows = store.claim("download", "w1", now=10, lease_s=60, limit=3)
    assert store.renew(rows[0].id, "w1", "downloading", until=500)
    assert store.reap(now=100) == 2
    counts = store.counts()
    assert counts["queued"] == 2 and counts["downloading"] == 1
    assert all(store.get(r.id).attempts == 0 for r in rows)  # type: ignore[union-attr]
    # the later leases of another owner are returned at start-up regardless of expiry
    assert store.reap(now=100, owner_not="w2", all_leases=True) == 1
    assert store.counts()["downloading"] == 0


def test_reaper_maps_every_in_progress_state_back(tmp_path: Path) -> None:
    s = SqliteDB(tmp_path / "z.db", now=0)
    chain = [("download", "downloaded"), ("analyze", "analyzed"), ("transcribe", "transcribed"),
             ("mine", "mined"), ("evaluate", "done")]
    s.add_videos([NewVideo("x" * 11, "u", "video")], now=0)
    for stage, finished in chain:
        (row,) = s.claim(stage, "w", now=1, lease_s=1)
        prev = row.state
        assert s.reap(now=5) == 1
        back = s.get(row.id)
        assert back is not None and back.state != prev
        (row,) = s.claim(stage, "w", now=6, lease_s=1)
        s.complete(row.id, "w", row.state, finished, now=7)
    assert s.counts()["done"] == 1


def test_fail_and_retry_failed(store: SqliteDB) -> None:
    (row,) = store.claim("download", "w1", now=10, lease_s=60)
    store.complete(row.id, "w1", "downloading", "downloaded", now=11)
    (row,) = store.claim("analyze", "w1", now=12, lease_s=60)
    store.fail(row.id, "w1", "analyzing", now=13, kind="bad_audio", error="not audio")
    got = store.get(row.id)
    assert got is not None
    assert (got.state, got.failed_stage, got.error_kind) == ("failed", "analyze", "bad_audio")
    assert store.failures_by_kind() == {"bad_audio": 1}
    assert store.retry_failed(now=14, kind="network") == 0
    assert store.retry_failed(now=14, stage="analyze") == 1
    got = store.get(row.id)
    assert got is not None and (got.state, got.attempts, got.error_kind) == \
        ("downloaded", 0, None)


def test_parts_round_trip_and_replace(store: SqliteDB) -> None:
    store.save_part("vid00000000", "chunk", 0, {"text": "a"}, now=1)
    store.save_part("vid00000000", "chunk", 1, {"text": "b"}, now=1)
    store.save_part("vid00000000", "chunk", 1, {"text": "c"}, now=2)
    store.save_part("vid00000000", "window", 0, [1, 2], now=2)
    assert store.load_parts("vid00000000", "chunk") == {0: {"text": "a"}, 1: {"text": "c"}}
    store.clear_parts("vid00000000", "chunk")
    assert store.load_parts("vid00000000", "chunk") == {}
    assert store.load_parts("vid00000000", "window") == {0: [1, 2]}


def test_readonly_store_cannot_write(tmp_path: Path, store: SqliteDB) -> None:
    ro = SqliteDB(tmp_path / "y.db", readonly=True)
    assert ro.counts()["queued"] == 3
    with pytest.raises(sqlite3.OperationalError):
        ro.add_videos([NewVideo("new" * 4, "u", "video")], now=1)


def test_fencing_token_refuses_every_write_of_a_stale_run(store: SqliteDB) -> None:
    """A run whose lease expired (suspended laptop) holds the same owner string as the
    run that claimed the row after it; only the fencing token tells them apart."""
    (stale,) = store.claim("download", "host:1", now=10, lease_s=3)
    assert store.reap(now=20) == 1
    (fresh,) = store.claim("download", "host:1", now=21, lease_s=60)
    assert fresh.id == stale.id and fresh.lease_token == stale.lease_token + 1
    vid, running = stale.id, "downloading"
    assert not store.renew(vid, "host:1", running, until=99, token=stale.lease_token)
    assert not store.holds(vid, running, stale.lease_token)
    for write in (
        lambda: store.complete(vid, "host:1", running, "downloaded", now=22,
                               token=stale.lease_token),
        lambda: store.release(vid, "host:1", running, now=22, token=stale.lease_token),
        lambda: store.fail(vid, "host:1", running, now=22, kind="x", error="y",
                           token=stale.lease_token),
        lambda: store.save_part(vid, "chunk", 0, {"stale": True}, now=22,
                                token=stale.lease_token),
        lambda: store.clear_parts(vid, "chunk", token=stale.lease_token),
    ):
        with pytest.raises(InvalidTransition) as err:
            write()
        assert err.value.lease_lost
    assert store.load_parts(vid, "chunk") == {}
    # the run that holds the row writes normally
    assert store.renew(vid, "host:1", running, until=99, token=fresh.lease_token)
    store.save_part(vid, "chunk", 0, {"fresh": True}, now=23, token=fresh.lease_token)
    store.complete(vid, "host:1", running, "downloaded", now=24, token=fresh.lease_token)
    got = store.get(vid)
    assert got is not None and got.state == "downloaded"
    assert store.load_parts(vid, "chunk") == {0: {"fresh": True}}
    # a finished row no longer accepts parts from the run that finished it
    with pytest.raises(InvalidTransition):
        store.save_part(vid, "chunk", 1, {}, now=25, token=fresh.lease_token)


def test_renew_many_keeps_live_leases_from_the_reaper(store: SqliteDB) -> None:
    a, b = store.claim("download", "host:1", now=10, lease_s=3, limit=2)
    assert store.renew_many([(a.id, a.state, a.lease_token)], "host:1", until=100) == 1
    assert store.reap(now=50) == 1  # only b, whose run is gone, comes back
    got_a, got_b = store.get(a.id), store.get(b.id)
    assert got_a is not None and got_a.state == "downloading"
    assert got_b is not None and got_b.state == "queued"
