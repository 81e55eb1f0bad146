"""Schema migrations. Each entry upgrades the database by one version; never edit a
released entry, append a new one."""

from __future__ import annotations

import sqlite3

import structlog

from ytpiped.store.sqlite_search import facets, video_doc_json

MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE videos (
        id              TEXT PRIMARY KEY,  -- YouTube video id, playlist:…, channel:…, url-…
        url             TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('video', 'playlist', 'channel', 'generic')),
        parent_id       TEXT,
        title           TEXT,
        channel         TEXT,
        upload_date     TEXT,
        duration_s      REAL,
        size_bytes      INTEGER,
        audio_path      TEXT,
        state           TEXT NOT NULL DEFAULT 'queued',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        lease_owner     TEXT,
        lease_until     REAL,
        failed_stage    TEXT,
        error_kind      TEXT,
        error           TEXT,
        info            TEXT NOT NULL DEFAULT '{}',
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL
    );
    CREATE INDEX videos_ready ON videos (state, next_attempt_at);
    CREATE INDEX videos_failed ON videos (error_kind) WHERE state = 'failed';
    CREATE INDEX videos_lease ON videos (lease_until) WHERE lease_owner IS NOT NULL;

    -- sub-work: transcription chunks, mining windows; a crash resumes at the next one
    CREATE TABLE parts (
        video_id   TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
        kind       TEXT NOT NULL,
        idx        INTEGER NOT NULL,
        data       TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (video_id, kind, idx)
    ) WITHOUT ROWID;

    CREATE TABLE events (
        id       INTEGER PRIMARY KEY,
        at       REAL NOT NULL,
        video_id TEXT,
        stage    TEXT,
        event    TEXT NOT NULL,
        kind     TEXT,
        message  TEXT
    );
    CREATE INDEX events_rate ON events (stage, event, at);
    CREATE INDEX events_video ON events (video_id);

    CREATE TABLE perf_samples (
        id           INTEGER PRIMARY KEY,
        at           REAL NOT NULL,
        device_kind  TEXT NOT NULL,
        model        TEXT NOT NULL,
        compute_type TEXT NOT NULL,
        batch_size   INTEGER NOT NULL,
        audio_s      REAL NOT NULL,
        elapsed_s    REAL NOT NULL
    );

    -- live state the daemon publishes (stage status, cooldowns) so status works without it
    CREATE TABLE daemon_state (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 2: fencing tokens. Every claim increments the row's token; renew, complete, release,
    # fail and parts writes of a run check it, so a run whose lease expired (a suspended
    # laptop, a paused VM) can never write over the run that claimed the row after it.
    """
    ALTER TABLE videos ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: priorities (`ytpiped add --priority N`): higher first within a stage
    """
    ALTER TABLE videos ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX videos_claim ON videos (state, priority DESC, next_attempt_at);
    """,
    # 4: full-text search (`ytpiped search`): transcript passages and evaluated claims, each
    # row in an FTS5 index (external content, kept in step by triggers); rows change in the
    # transaction that records the transcript or the mining result
    """
    CREATE TABLE search_passages (
        id       INTEGER PRIMARY KEY,
        video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
        idx      INTEGER NOT NULL,
        start_s  REAL NOT NULL,
        end_s    REAL NOT NULL,
        text     TEXT NOT NULL,
        marks    TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX search_passages_video ON search_passages (video_id, idx);
    CREATE VIRTUAL TABLE search_passages_fts USING fts5 (text, content = 'search_passages',
        content_rowid = 'id', tokenize = 'porter unicode61 remove_diacritics 2');
    CREATE TRIGGER search_passages_ai AFTER INSERT ON search_passages BEGIN
        INSERT INTO search_passages_fts (rowid, text) VALUES (new.id, new.text); END;
    CREATE TRIGGER search_passages_ad AFTER DELETE ON search_passages BEGIN
        INSERT INTO search_passages_fts (search_passages_fts, rowid, text)
        VALUES ('delete', old.id, old.text); END;
    CREATE TABLE search_claims (
        id         INTEGER PRIMARY KEY,
        video_id   TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
        idx        INTEGER NOT NULL,
        text       TEXT NOT NULL,
        evidence   TEXT NOT NULL DEFAULT '',
        type       TEXT,
        start_s    REAL,
        end_s      REAL,
        rank       INTEGER,
        importance INTEGER
    );
    CREATE INDEX search_claims_video ON search_claims (video_id, idx);
    CREATE VIRTUAL TABLE search_claims_fts USING fts5 (text, evidence, content = 'search_claims',
        content_rowid = 'id', tokenize = 'porter unicode61 remove_diacritics 2');
    CREATE TRIGGER search_claims_ai AFTER INSERT ON search_claims BEGIN
        INSERT INTO search_claims_fts (rowid, text, evidence)
        VALUES (new.id, new.text, new.evidence); END;
    CREATE TRIGGER search_claims_ad AFTER DELETE ON search_claims BEGIN
        INSERT INTO search_claims_fts (search_claims_fts, rowid, text, evidence)
        VALUES ('delete', old.id, old.text, old.evidence); END;
    """,
    # 5: `search --channel/--since` inside the index: each row's facets (its video's channel
    # and upload date as words, `sqlite_search.facets`) in a column of both FTS5 tables;
    # the tables are built again from their content (minutes for thousands of videos)
    """
    ALTER TABLE search_passages ADD COLUMN facets TEXT NOT NULL DEFAULT '';
    ALTER TABLE search_claims ADD COLUMN facets TEXT NOT NULL DEFAULT '';
    UPDATE search_passages SET facets = ytpiped_facets(v.channel, v.upload_date)
        FROM videos v WHERE v.id = search_passages.video_id;
    UPDATE search_claims SET facets = ytpiped_facets(v.channel, v.upload_date)
        FROM videos v WHERE v.id = search_claims.video_id;
    DROP TRIGGER search_passages_ai;
    DROP TRIGGER search_passages_ad;
    DROP TRIGGER search_claims_ai;
    DROP TRIGGER search_claims_ad;
    DROP TABLE search_passages_fts;
    DROP TABLE search_claims_fts;
    CREATE VIRTUAL TABLE search_passages_fts USING fts5 (text, facets,
        content = 'search_passages', content_rowid = 'id',
        tokenize = 'porter unicode61 remove_diacritics 2');
    CREATE TRIGGER search_passages_ai AFTER INSERT ON search_passages BEGIN
        INSERT INTO search_passages_fts (rowid, text, facets)
        VALUES (new.id, new.text, new.facets); END;
    CREATE TRIGGER search_passages_ad AFTER DELETE ON search_passages BEGIN
        INSERT INTO search_passages_fts (search_passages_fts, rowid, text, facets)
        VALUES ('delete', old.id, old.text, old.facets); END;
    CREATE TRIGGER search_passages_au AFTER UPDATE ON search_passages BEGIN
        INSERT INTO search_passages_fts (search_passages_fts, rowid, text, facets)
        VALUES ('delete', old.id, old.text, old.facets); INSERT INTO search_passages_fts
        (rowid, text, facets)
        VALUES (new.id, new.text, new.facets); END;
    CREATE VIRTUAL TABLE search_claims_fts USING fts5 (text, evidence, facets,
        content = 'search_claims', content_rowid = 'id',
        tokenize = 'porter unicode61 remove_diacritics 2');
    CREATE TRIGGER search_claims_ai AFTER INSERT ON search_claims BEGIN
        INSERT INTO search_claims_fts (rowid, text, evidence, facets)
        VALUES (new.id, new.text, new.evidence, new.facets); END;
    CREATE TRIGGER search_claims_ad AFTER DELETE ON search_claims BEGIN
        INSERT INTO search_claims_fts (search_claims_fts, rowid, text, evidence, facets)
        VALUES ('delete', old.id, old.text, old.evidence, old.facets); END;
    CREATE TRIGGER search_claims_au AFTER UPDATE ON search_claims BEGIN
        INSERT INTO search_claims_fts (search_claims_fts, rowid, text, evidence, facets)
        VALUES ('delete', old.id, old.text, old.evidence, old.facets); INSERT INTO
        search_claims_fts (rowid, text, evidence, facets)
        VALUES (new.id, new.text, new.evidence, new.facets); END;
    INSERT INTO search_passages_fts (search_passages_fts) VALUES ('rebuild');
    INSERT INTO search_claims_fts (search_claims_fts) VALUES ('rebuild')
    """,
    # 6: the video index (`search --in videos`): one document a video of its metadata
    # (title, tags, chapter titles, channel, description: `store.search.VideoDoc`) with the
    # facets of the other two, filled here from every video row's title, channel and
    # info.meta (`sqlite_search.video_doc_json`)
    """
    CREATE TABLE search_videos (
        id          INTEGER PRIMARY KEY,
        video_id    TEXT NOT NULL UNIQUE REFERENCES videos (id) ON DELETE CASCADE,
        title       TEXT NOT NULL DEFAULT '',
        tags        TEXT NOT NULL DEFAULT '',
        chapters    TEXT NOT NULL DEFAULT '',
        channel     TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        facets      TEXT NOT NULL DEFAULT ''
    );
    CREATE VIRTUAL TABLE search_videos_fts USING fts5 (title, tags, chapters, channel,
        description, facets, content = 'search_videos', content_rowid = 'id',
        tokenize = 'porter unicode61 remove_diacritics 2');
    CREATE TRIGGER search_videos_ai AFTER INSERT ON search_videos BEGIN
        INSERT INTO search_videos_fts (rowid, title, tags, chapters, channel, description,
        facets) VALUES (new.id, new.title, new.tags, new.chapters, new.channel,
        new.description, new.facets); END;
    CREATE TRIGGER search_videos_ad AFTER DELETE ON search_videos BEGIN
        INSERT INTO search_videos_fts (search_videos_fts, rowid, title, tags, chapters,
        channel, description, facets) VALUES ('delete', old.id, old.title, old.tags,
        old.chapters, old.channel, old.description, old.facets); END;
    CREATE TRIGGER search_videos_au AFTER UPDATE ON search_videos BEGIN
        INSERT INTO search_videos_fts (search_videos_fts, rowid, title, tags, chapters,
        channel, description, facets) VALUES ('delete', old.id, old.title, old.tags,
        old.chapters, old.channel, old.description, old.facets); INSERT INTO
        search_videos_fts (rowid, title, tags, chapters, channel, description, facets)
        VALUES (new.id, new.title, new.tags, new.chapters, new.channel, new.description,
        new.facets); END;
    INSERT INTO search_videos (video_id, title, tags, chapters, channel, description, facets)
        SELECT id, json_extract(doc, '$.title'), json_extract(doc, '$.tags'),
        json_extract(doc, '$.chapters'), json_extract(doc, '$.channel'),
        json_extract(doc, '$.description'), ytpiped_facets(channel, upload_date)
        FROM (SELECT id, channel, upload_date,
              ytpiped_video_doc(kind, title, channel, info) AS doc FROM videos ORDER BY rowid)
        WHERE doc IS NOT NULL
    """,
    # 7: phrases answered fast: each passage and claim is also indexed by its adjacent term
    # pairs (`store.search.pairs_text`), a column that queries name and bm25 weighs as the
    # text; a phrase query matches its pairs there (`fts5_query`), so FTS5 checks
    # positions only in the rows that hold the phrase's pairs. The pairs are not stored:
    # the index's content is a view that computes them (`ytpiped_pairs`, registered on
    # every connection by `sqlite.connect`). Both FTS5 tables are built again from their
    # content (minutes for thousands of videos)
    """
    CREATE VIEW search_passages_terms AS SELECT id, text, facets, ytpiped_pairs(text) AS pairs
        FROM search_passages;
    CREATE VIEW search_claims_terms AS SELECT id, text, evidence, facets,
        ytpiped_pairs(text, evidence) AS pairs FROM search_claims;
    DROP TRIGGER search_passages_ai;
    DROP TRIGGER search_passages_ad;
    DROP TRIGGER search_passages_au;
    DROP TRIGGER search_claims_ai;
    DROP TRIGGER search_claims_ad;
    DROP TRIGGER search_claims_au;
    DROP TABLE search_passages_fts;
    DROP TABLE search_claims_fts;
    CREATE VIRTUAL TABLE search_passages_fts USING fts5 (text, facets, pairs,
        content = 'search_passages_terms', content_rowid = 'id',
        tokenize = 'porter unicode61 remove_diacritics 2');
    CREATE TRIGGER search_passages_ai AFTER INSERT ON search_passages BEGIN
        INSERT INTO search_passages_fts (rowid, text, facets, pairs)
        VALUES (new.id, new.text, new.facets, ytpiped_pairs(new.text)); END;
    CREATE TRIGGER search_passages_ad AFTER DELETE ON search_passages BEGIN
        INSERT INTO search_passages_fts (search_passages_fts, rowid, text, facets, pairs)
        VALUES ('delete', old.id, old.text, old.facets, ytpiped_pairs(old.text)); END;
    CREATE TRIGGER search_passages_au AFTER UPDATE ON search_passages BEGIN
        INSERT INTO search_passages_fts (search_passages_fts, rowid, text, facets, pairs)
        VALUES ('delete', old.id, old.text, old.facets, ytpiped_pairs(old.text)); INSERT
        INTO search_passages_fts (rowid, text, facets, pairs)
        VALUES (new.id, new.text, new.facets, ytpiped_pairs(new.text)); END;
    CREATE VIRTUAL TABLE search_claims_fts USING fts5 (text, evidence, facets, pairs,
        content = 'search_claims_terms', content_rowid = 'id',
        tokenize = 'porter unicode61 remove_diacritics 2');
    CREATE TRIGGER search_claims_ai AFTER INSERT ON search_claims BEGIN
        INSERT INTO search_claims_fts (rowid, text, evidence, facets, pairs)
        VALUES (new.id, new.text, new.evidence, new.facets,
        ytpiped_pairs(new.text, new.evidence)); END;
    CREATE TRIGGER search_claims_ad AFTER DELETE ON search_claims BEGIN
        INSERT INTO search_claims_fts (search_claims_fts, rowid, text, evidence, facets,
        pairs) VALUES ('delete', old.id, old.text, old.evidence, old.facets,
        ytpiped_pairs(old.text, old.evidence)); END;
    CREATE TRIGGER search_claims_au AFTER UPDATE ON search_claims BEGIN
        INSERT INTO search_claims_fts (search_claims_fts, rowid, text, evidence, facets,
        pairs) VALUES ('delete', old.id, old.text, old.evidence, old.facets,
        ytpiped_pairs(old.text, old.evidence)); INSERT INTO search_claims_fts (rowid, text,
        evidence, facets, pairs) VALUES (new.id, new.text, new.evidence, new.facets,
        ytpiped_pairs(new.text, new.evidence)); END;
    INSERT INTO search_passages_fts (search_passages_fts) VALUES ('rebuild');
    INSERT INTO search_claims_fts (search_claims_fts) VALUES ('rebuild')
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
#: the versions that build the search indexes again (long on a large database)
REBUILDS = (5, 7)
SEARCH_SINCE = 4  # the version that made the search tables


def migrate(conn: sqlite3.Connection, now: float) -> int:
    """Bring the database to SCHEMA_VERSION in one IMMEDIATE transaction (so two processes
    opening a new database at once cannot both migrate); returns the version found."""
    conn.create_function("ytpiped_facets", 2, facets, deterministic=True)
    conn.create_function("ytpiped_video_doc", 4, video_doc_json, deterministic=True)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
                     "applied_at REAL NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        found = int(row[0] or 0)
        if found > SCHEMA_VERSION:
            raise RuntimeError(f"database schema version {found} is newer than this ytpiped "
                               f"({SCHEMA_VERSION}); upgrade ytpiped")
        rebuilds = [v for v in REBUILDS if found < v <= SCHEMA_VERSION]
        if found >= SEARCH_SINCE and rebuilds and conn.execute(
                "SELECT EXISTS (SELECT 1 FROM search_passages UNION ALL SELECT 1 FROM "
                "search_claims)").fetchone()[0]:
            structlog.get_logger("store").warning(
                "db_upgrade_rebuilds_search", from_version=found, to_version=SCHEMA_VERSION,
                note="the search indexes are built again: about 10 minutes for 7,000 one-hour "
                     "videos; an interrupted upgrade is rolled back and starts over")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1].split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found
