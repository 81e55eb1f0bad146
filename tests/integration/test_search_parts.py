"""A large SQLite index is scanned in parts at once (one per core, each on a read-only
connection of its own), and the indexes of `--in all` at once: the hits must be exactly
those one scan of the whole index ranks — the best of its newest SCAN_CAP matches."""

from __future__ import annotations

import heapq
import itertools
import threading
from pathlib import Path
from typing import Any

import pytest

from ytpiped import search
from ytpiped.store import NewVideo, SqliteDB
from ytpiped.store import sqlite_search as ss
from ytpiped.store.search import ClaimDoc, Passage, SearchDocs, SearchQuery

WORDS = ["solar", "wind", "ocean", "coffee", "sleep", "memory", "panel", "energy", "grid",
         "storage"]


def build(path: Path, videos: int = 30) -> None:
    db = SqliteDB(path, now=0)
    try:
        ids = [f"partvid{i:04d}" for i in range(videos)]
        db.add_videos([NewVideo(v, f"https://www.youtube.com/watch?v={v}", "video")
                       for v in ids], now=0)
        for n, vid in enumerate(ids):
            texts = [" ".join(WORDS[(n * 7 + k * 3 + j) % len(WORDS)] for j in range(1 + k % 5))
                     for k in range(6)]
            passages = tuple(Passage(k, k * 30.0, k * 30.0 + 30, t, ((0, k * 30.0),))
                             for k, t in enumerate(texts))
            claims = tuple(ClaimDoc(k, f"claim {t}", f"evidence {t} said", "factual",
                                    k * 30.0, k * 30.0 + 5, k + 1, 5) for k, t in enumerate(texts))
            db.index_video(vid, SearchDocs(passages=passages, claims=claims))
    finally:
        db.close()


def one_scan(db: SqliteDB, q: SearchQuery) -> list[tuple[int, float]]:
    """What the index ranks, read with the query of a single scan."""
    scan = db._scan_of(q)
    rows = db.conn.execute(
        f"SELECT rowid, {scan.rank} FROM {scan.fts} WHERE {scan.fts} MATCH ? "
        f"ORDER BY rowid DESC LIMIT {ss.SCAN_CAP}", (scan.match,)).fetchall()
    return heapq.nsmallest(q.limit, rows, key=lambda r: (r[1], -r[0]))


def key(hits: list[Any]) -> list[tuple[str, str, int, float]]:
    return [(h.kind, h.video_id, h.idx, round(h.score, 9)) for h in hits]


def rows_of(db: SqliteDB, q: SearchQuery, hits: list[Any]) -> set[tuple[int, float]]:
    table = db._scan_of(q).fts.removesuffix("_fts")
    return {(db.conn.execute(f"SELECT id FROM {table} WHERE video_id = ? AND idx = ?",
                             (h.video_id, h.idx)).fetchone()[0], round(-h.score, 9))
            for h in hits}


@pytest.mark.parametrize("text", ["solar", "energy OR sleep", '"wind ocean"', "stor*"])
def test_an_index_scanned_in_parts_ranks_what_one_scan_ranks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "ytpiped.db"
    build(path)
    monkeypatch.setattr(ss, "SCAN_CAP", 25)  # fewer than the matches: the newest count
    db = SqliteDB(path, readonly=True)
    try:
        qs = search.queries(text, "all", limit=7)  # claims, transcripts, videos
        whole = db.search_many(qs)  # a small index: one scan each, on db.conn
        for q, hits in zip(qs[:2], whole[:2], strict=True):
            assert hits and rows_of(db, q, hits) == {(r, round(s, 9))
                                                     for r, s in one_scan(db, q)}
        seen: list[tuple[str, int, int, str]] = []
        real = ss._scan_part

        def spy(conn: Any, p: Path, scan: Any, lo: int, hi: int) -> Any:
            seen.append((scan.fts, lo, hi, threading.current_thread().name))
            return real(conn, p, scan, lo, hi)

        monkeypatch.setattr(ss, "_scan_part", spy)
        monkeypatch.setattr(ss, "PARALLEL_ROWS", 0)  # every index is large now
        monkeypatch.setattr(ss, "MAX_PARTS", 3)
        monkeypatch.setattr(ss.os, "cpu_count", lambda: 8)
        parted = db.search_many(qs)
        assert [key(h) for h in parted] == [key(h) for h in whole]
        assert [h.snippet for r in parted for h in r] == [h.snippet for r in whole for h in r]
    finally:
        db.close()
    assert seen and all(name.startswith("ytpiped-search") for *_, name in seen)
    for fts in ("search_claims_fts", "search_passages_fts"):
        spans = sorted((lo, hi) for f, lo, hi, _ in seen if f == fts)
        assert len(spans) == 3 and spans[0][0] == 0  # three parts, from rowid 0
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))  # adjoining
        assert spans[-1][1] >= 180  # to the last row (30 videos x 6)


def test_a_search_of_all_is_merged_from_the_indexes_scanned_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ytpiped.db"
    build(path)
    db = SqliteDB(path, readonly=True)
    try:
        one_by_one = search.merge([db.search(q) for q in search.queries("solar", "all")], 20)
        monkeypatch.setattr(ss, "PARALLEL_ROWS", 0)
        assert key(search.run(db, "solar", "all")) == key(one_by_one)
        assert {h.kind for h in one_by_one} == {"claim", "transcript"}
    finally:
        db.close()
