"""What is SQLite's own in SqliteDB: WAL, migrations, read-only connections. The
behaviour every store shares is in tests/contract."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing

from ytpiped.store import NewVideo, SqliteDB
from ytpiped.store.schema import MIGRATIONS, SCHEMA_VERSION


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteDB]:
    with SqliteDB(tmp_path / "y.db", now=1.0) as s:
        s.add_videos([NewVideo(f"vid{i:08d}", f"u{i}", "video") for i in range(3)], now=1.0)
        yield s


def old_database(path: Path, version: int) -> sqlite3.Connection:
    """A database left at schema `version` (migrations 1..version applied), open for
    rows to be put in before SqliteDB upgrades it. The SQL functions the old migrations
    call are stand-ins (SqliteDB registers the real ones)."""
    from ytpiped.store.sqlite_search import video_doc_json

    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_function("ytpiped_facets", 2, lambda c, d: "", deterministic=True)
    conn.create_function("ytpiped_video_doc", 4, video_doc_json, deterministic=True)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at REAL NOT "
                 "NULL)")
    for v in range(1, version + 1):
        for statement in MIGRATIONS[v - 1].split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (v,))
    return conn


def test_wal_and_schema_version(store: SqliteDB) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    v = store.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    assert v == SCHEMA_VERSION


def test_reopen_does_not_migrate_twice(tmp_path: Path, store: SqliteDB) -> None:
    store.close()
    with SqliteDB(tmp_path / "y.db", now=2.0) as again:
        assert again.conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == \
            SCHEMA_VERSION
        assert again.counts()["queued"] == 3


def test_readonly_store_cannot_write(tmp_path: Path, store: SqliteDB) -> None:
    with SqliteDB(tmp_path / "y.db", readonly=True) as ro:
        assert ro.counts()["queued"] == 3
        with pytest.raises(sqlite3.OperationalError):
            ro.add_videos([NewVideo("new" * 4, "u", "video")], now=1)


def test_a_version_1_database_gains_fencing_tokens_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = old_database(path, 1)
    conn.execute("INSERT INTO videos (id, url, kind, state, attempts, created_at, updated_at) "
                 "VALUES ('oldvideo001', 'u', 'video', 'downloaded', 2, 0, 0)")
    conn.close()
    db = SqliteDB(path, now=5.0)
    got = db.get("oldvideo001")
    assert got is not None and (got.state, got.attempts, got.lease_token) == ("downloaded", 2, 0)
    assert db.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == \
        SCHEMA_VERSION
    db.close()


def test_a_version_4_search_index_gains_facets_and_filters_keep_working(
        tmp_path: Path) -> None:
    """Migration 5 rebuilds both FTS tables with the facets of rows indexed before it."""
    from ytpiped.store.search import ClaimDoc, Passage, SearchDocs, SearchQuery, parse

    path = tmp_path / "old.db"
    conn = old_database(path, 4)
    for vid, channel, date in (("v1", "Science Hour", "20240105"), ("v2", "Home", "20230610")):
        conn.execute("INSERT INTO videos (id, url, kind, state, channel, upload_date, "
                     "created_at, updated_at) VALUES (?, 'u', 'video', 'done', ?, ?, 0, 0)",
                     (vid, channel, date))
        conn.execute("INSERT INTO search_claims (video_id, idx, text, evidence) VALUES "
                     "(?, 0, 'compost helps', 'a quote')", (vid,))
        conn.execute("INSERT INTO search_passages (video_id, idx, start_s, end_s, text) "
                     "VALUES (?, 0, 0, 5, 'compost talk')", (vid,))
    conn.close()
    with SqliteDB(path, now=5.0) as db:
        def found(**kw: object) -> list[str]:
            return sorted(h.video_id for h in db.search(SearchQuery(parse("compost"), **kw)))  # type: ignore[arg-type]

        assert found() == ["v1", "v2"]
        assert found(where="transcripts", channel="science hour") == ["v1"]
        assert found(since="20240101") == ["v1"]
        assert found(channel="home", since="20230601") == ["v2"]
        db.index_video("v2", SearchDocs(claims=(ClaimDoc(0, "compost again", "", None, None,
                                                         None, None, None),),
                                        passages=(Passage(0, 0, 5, "no match"),)))
        assert found(channel="home") == ["v2"]
        assert found(where="transcripts", channel="home") == []


META = {  # as download.meta.metadata() keeps it in info.meta
    "title": "Island walk", "channel": "Science Hour", "upload_date": "20240105",
    "description": "  We climb until the volcanoes\nof the island erupt.  ",
    "tags": ["geology", "  lava   flows ", None, ""], "chapters": [
        {"start": 0.0, "end": 60.0, "title": "Welcome"}, {"title": ""}, "not a chapter",
        {"start": 60.0, "end": 120.0, "title": "Magma chambers"}]}


def test_a_version_5_database_gains_the_video_index_filled_from_its_rows(
        tmp_path: Path) -> None:
    """Migration 6 indexes every video row's metadata (info.meta, else its title and
    channel); playlists and rows nothing is known of stay out."""
    import json

    from ytpiped.store.search import SearchQuery, parse, video_doc

    path = tmp_path / "old.db"
    conn = old_database(path, 5)
    rows = [("withmeta001", "video", "Island walk", "Science Hour", "20240105",
             {"meta": META, "sponsorblock": []}),
            ("oldtitle001", "generic", "Garden  talk", "Home Show", "20230610", {}),
            ("PLlist00001", "playlist", "A playlist about volcanoes", None, None, {}),
            ("queued00001", "video", None, None, None, {}),
            ("badinfo0001", "video", None, None, None, {"meta": "not an object"})]
    for vid, kind, title, channel, date, info in rows:
        conn.execute("INSERT INTO videos (id, url, kind, state, title, channel, upload_date, "
                     "info, created_at, updated_at) VALUES (?, 'u', ?, 'done', ?, ?, ?, ?, 0, "
                     "0)", (vid, kind, title, channel, date, json.dumps(info)))
    conn.close()
    with SqliteDB(path, now=5.0) as db:
        def found(text: str, **kw: object) -> list[tuple[str, str | None]]:
            return [(h.video_id, h.field) for h in db.search(
                SearchQuery(parse(text), "videos", **kw))]  # type: ignore[arg-type]

        assert db.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == \
            SCHEMA_VERSION
        assert found("volcanoes") == [("withmeta001", "description")]
        assert found("lava") == [("withmeta001", "tags")]
        assert found("magma") == [("withmeta001", "chapters")]
        assert found("garden") == [("oldtitle001", "title")]  # a row from before meta
        assert found("volcanoes", channel="science hour", since="20240101") == \
            [("withmeta001", "description")]
        assert found("volcanoes", since="20240106") == []
        assert db.search_counts()["metadata"] == 2
        kept = db.conn.execute("SELECT title, tags, chapters, channel, description FROM "
                               "search_videos WHERE video_id = 'withmeta001'").fetchone()
        assert kept == video_doc(META, "Island walk", "Science Hour").texts() == (
            "Island walk", "geology, lava flows", "Welcome · Magma chambers", "Science Hour",
            "We climb until the volcanoes\nof the island erupt.")
        db.conn.execute("INSERT INTO search_videos_fts (search_videos_fts) VALUES "
                        "('integrity-check')")


def test_a_version_6_search_index_gains_term_pairs_and_phrases_keep_matching(
        tmp_path: Path) -> None:
    """Migration 7 gives every passage and claim its term pairs and builds both FTS5
    tables again: a phrase is found where it was and nowhere else."""
    from ytpiped.store.search import SearchQuery, pairs_text, parse

    path = tmp_path / "old.db"
    conn = old_database(path, 6)
    conn.execute("INSERT INTO videos (id, url, kind, state, created_at, updated_at) VALUES "
                 "('phrasevid01', 'u', 'video', 'done', 0, 0)")
    texts = ["the heat pumps of the north", "north of the pumps, heat", "heat pumping stations"]
    for i, text in enumerate(texts):
        conn.execute("INSERT INTO search_passages (video_id, idx, start_s, end_s, text) VALUES "
                     "('phrasevid01', ?, ?, ?, ?)", (i, 10.0 * i, 10.0 * i + 5, text))
    conn.execute("INSERT INTO search_claims (video_id, idx, text, evidence) VALUES "
                 "('phrasevid01', 0, 'Heat pumps pay off.', 'we saw the heat pump pay off')")
    conn.close()
    with structlog.testing.capture_logs() as logs, SqliteDB(path, now=5.0) as db:
        # a long upgrade says so first
        assert [(e["event"], e["from_version"]) for e in logs] == \
            [("db_upgrade_rebuilds_search", 6)]

        def found(text: str, where: str) -> list[int]:
            query = SearchQuery(parse(text), where)  # type: ignore[arg-type]
            return sorted(h.idx for h in db.search(query))

        assert db.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == \
            SCHEMA_VERSION
        assert [r[0] for r in db.conn.execute("SELECT pairs FROM search_passages_terms ORDER "
                                              "BY id")] == [pairs_text(t) for t in texts]
        # never stored: the content table is as it was
        assert "pairs" not in {r[1] for r in db.conn.execute("PRAGMA table_info("
                                                             "search_passages)")}
        assert found('"heat pump"', "transcripts") == [0, 2]  # stemmed: pumps, pumping
        assert found('"of the north"', "transcripts") == [0]
        assert found('"pumps the heat"', "transcripts") == []  # the words, not the phrase
        assert found('"the pumps heat"', "transcripts") == [1]  # commas are no words
        assert found('"heat pump pay"', "claims") == [0]  # in the evidence
        assert found('"pumps pay"', "claims") == [0]  # in the text
        assert found('"off we"', "claims") == []  # no phrase across text and evidence
        for table in ("search_passages_fts", "search_claims_fts"):
            db.conn.execute(f"INSERT INTO {table} ({table}) VALUES ('integrity-check')")
