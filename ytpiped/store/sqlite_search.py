"""The SQLite side of search and the listings (`search`, `ls`, `show`, `logs`): FTS5 indexes
of transcript passages and evaluated claims (schema version 4) and of each video's
metadata (schema version 6), ranked by bm25, and the filtered reads of videos and events.
`SqliteDB` inherits these methods.

`--channel` and `--since` are matched inside the index: every row carries its video's
facets (schema version 5), words that stand for the channel (`c` + a hash of its name
without case) and the upload year, month and day (`y2024 m202403 d20240315`), in a column
of its own that queries name explicitly and bm25 does not weigh. A filter is then one more
term FTS5 intersects with the query's, and costs no lookup of the video per match.

Phrases: a passage's and a claim's adjacent term pairs (`store.search.pairs_text`, terms as
FTS5's tokenizer makes them: `fts_terms`) are indexed as a column too (schema version 7;
computed by the content view, never stored). A phrase is
found and ranked as the phrase of its pairs in that column, which are rare even when its
words are the commonest of all ("of the", "you know what"); the snippets are made with the
phrase of words, which matches the same rows."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ytpiped.store.model import LogEvent, VideoRow, video_filters
from ytpiped.store.search import (
    MARK,
    SNIPPET_WORDS,
    VIDEO_FIELDS,
    VIDEO_KINDS,
    VIDEO_WEIGHTS,
    ClaimDoc,
    Passage,
    QuerySyntaxError,
    SearchDocs,
    SearchHit,
    SearchQuery,
    first_mark,
    fts5_query,
    video_doc,
    video_hit,
)

#: bm25 weights of a claim's text, its evidence, its facets (never weighed) and its term
#: pairs (where phrases match: as a phrase in the text)
CLAIM_WEIGHTS = (2.0, 1.0, 0.0, 2.0)
#: bm25 weights of a passage's text, its facets and its term pairs
PASSAGE_WEIGHTS = (1.0, 0.0, 1.0)
#: bm25 weights of a video's fields (VIDEO_FIELDS) and its facets (never weighed)
VIDEO_FTS_WEIGHTS = (*VIDEO_WEIGHTS, 0.0)
#: matches ranked per query, newest first: a word so common that it matches more rows
#: (where bm25 says least anyway) is ranked among its most recent matches, so that a
#: query costs the same on 7,000 videos as on 700 (bm25 of one match costs ~3 µs)
SCAN_CAP = 5_000
#: the tables of the three indexes (each with its FTS5 table `<name>_fts`)
INDEXES = ("search_passages", "search_claims", "search_videos")
_HIT = "\x01"  # marks the first match in highlight(), to find its time
_COLUMNS = ", ".join(VideoRow.__dataclass_fields__)
_VIDEO_COLS = ", ".join(VIDEO_FIELDS)


def channel_facet(channel: str) -> str:
    """The index word that stands for a channel (its name compared without case)."""
    return "c" + hashlib.sha1(channel.strip().casefold().encode()).hexdigest()[:16]


def facets(channel: str | None, upload_date: str | None) -> str:
    """The facets column of a video's rows (also an SQL function in migration 5)."""
    words = [channel_facet(channel)] if channel and channel.strip() else []
    d = upload_date or ""
    if len(d) == 8 and d.isdigit():
        words += [f"y{d[:4]}", f"m{d[:6]}", f"d{d}"]
    return " ".join(words)


def video_doc_json(kind: str, title: str | None, channel: str | None,
                   info: str | None) -> str | None:
    """A video row's document (`store.search.video_doc` of its title, channel and
    info.meta) as a JSON object, None for a playlist or channel or a row with no words (an
    SQL function in migration 6)."""
    if kind not in VIDEO_KINDS:
        return None
    try:
        meta = (json.loads(info) if info else {}).get("meta")
    except (ValueError, AttributeError):
        meta = None
    doc = video_doc(meta, title, channel)
    return None if doc.empty else json.dumps(doc.__dict__)


def since_facets(since: str, last_year: int) -> list[str]:
    """The fewest facet words that together match every upload date from `since`
    (YYYYMMDD) to the end of `last_year`: the rest of its month by day, the rest of its
    year by month, the years after it."""
    year, month, day = int(since[:4]), int(since[4:6]), int(since[6:8])
    if day == 1 and month == 1:
        return [f"y{y}" for y in range(year, last_year + 1)]
    out = [f"d{since[:6]}{d:02d}" for d in range(day, 32)] if day > 1 else \
        [f"m{since[:6]}"]
    out += [f"m{year}{m:02d}" for m in range(month + 1, 13)]
    return out + [f"y{y}" for y in range(year + 1, last_year + 1)]


def _filtered(query: SearchQuery, columns: str, pairs: str = "") -> str:
    """The FTS5 query: the words in `columns` (phrases also in the `pairs` column, if the
    table has one), the filters in the facets."""
    out = f"({fts5_query(query.node, columns, pairs)})"
    if query.channel:
        out += f' AND {{facets}} : "{channel_facet(query.channel)}"'
    if query.since:
        last_year = time.gmtime().tm_year + 1  # upload dates are never later
        out += " AND {facets} : (" + " OR ".join(
            f'"{w}"' for w in since_facets(query.since, last_year)) + ")"
    return out


class SqliteSearch:
    """Search and listing queries over `self.conn` (mixed into SqliteDB)."""

    conn: sqlite3.Connection
    if TYPE_CHECKING:  # SqliteDB's
        def _tx(self) -> AbstractContextManager[None]: ...
        def _video_row(self, r: Any) -> VideoRow: ...

    # ------------------------------------------------------------------ the indexes

    def _write_search(self, video_id: str, docs: SearchDocs) -> None:
        """Replace the video's passages and/or claims (inside the caller's transaction)."""
        row = self.conn.execute("SELECT channel, upload_date FROM videos WHERE id = ?",
                                (video_id,)).fetchone()
        tags = facets(*row) if row else ""
        if docs.passages is not None:
            self.conn.execute("DELETE FROM search_passages WHERE video_id = ?", (video_id,))
            self.conn.executemany(
                "INSERT INTO search_passages (video_id, idx, start_s, end_s, text, marks, "
                "facets) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(video_id, p.idx, p.start_s, p.end_s, p.text, json.dumps(p.marks), tags)
                 for p in docs.passages])
        if docs.claims is not None:
            self.conn.execute("DELETE FROM search_claims WHERE video_id = ?", (video_id,))
            self.conn.executemany(
                "INSERT INTO search_claims (video_id, idx, text, evidence, type, start_s, "
                "end_s, rank, importance, facets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(video_id, c.idx, c.text, c.evidence, c.type, c.start_s, c.end_s, c.rank,
                  c.importance, tags) for c in docs.claims])
        if docs.video is not None:
            self.conn.execute("DELETE FROM search_videos WHERE video_id = ?", (video_id,))
            if not docs.video.empty:
                self.conn.execute(
                    f"INSERT INTO search_videos (video_id, {_VIDEO_COLS}, facets) VALUES "
                    f"(?, {', '.join('?' * len(VIDEO_FIELDS))}, ?)",
                    (video_id, *docs.video.texts(), tags))

    def _refresh_facets(self, video_id: str) -> None:
        """After the video's channel or upload date changed (inside the caller's
        transaction): its indexed rows follow."""
        row = self.conn.execute("SELECT channel, upload_date FROM videos WHERE id = ?",
                                (video_id,)).fetchone()
        tags = facets(*row) if row else ""
        for table in INDEXES:
            self.conn.execute(f"UPDATE {table} SET facets = ? WHERE video_id = ? AND "
                              "facets != ?", (tags, video_id, tags))

    def index_video(self, video_id: str, docs: SearchDocs) -> None:
        """Replace what the indexes hold of one video (`ytpiped reindex`)."""
        with self._tx():
            self._write_search(video_id, docs)

    def clear_search(self) -> None:
        """Empty the indexes."""
        with self._tx():
            for table in INDEXES:
                self.conn.execute(f"DELETE FROM {table}")
                # the external-content index starts again from nothing
                self.conn.execute(f"INSERT INTO {table}_fts ({table}_fts) VALUES ('delete-all')")

    def search_counts(self) -> dict[str, int]:
        """Rows in each index and the videos they come from."""
        claims, passages, metadata, videos = self.conn.execute(
            "SELECT (SELECT count(*) FROM search_claims), (SELECT count(*) FROM "
            "search_passages), (SELECT count(*) FROM search_videos), (SELECT count(*) FROM "
            "(SELECT video_id FROM search_claims UNION SELECT video_id FROM search_passages "
            "UNION SELECT video_id FROM search_videos))").fetchone()
        return {"claims": int(claims), "passages": int(passages), "metadata": int(metadata),
                "videos": int(videos)}

    # ------------------------------------------------------------------ search

    def _run_match(self, sql: str, match: str, limit: int, shown: str | None = None
                   ) -> list[Any]:
        """`sql` with the FTS5 query that finds and ranks (`match`) and the one the hits'
        snippets mark (`shown`: the same rows, their words in the text)."""
        try:
            return self.conn.execute(sql, (match, limit, shown or match)).fetchall()
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc):  # cannot happen with parsed queries; still no traceback
                raise QuerySyntaxError(f"search query: {exc}") from None
            raise

    def _search_videos(self, query: SearchQuery) -> list[SearchHit]:
        """The video index: the snippet of the first field (VIDEO_FIELDS) holding a match."""
        fts = "search_videos_fts"
        match = _filtered(query, " ".join(VIDEO_FIELDS))
        snippets = ", ".join(f"snippet({fts}, {i}, '{MARK}', '{MARK}', '…', {SNIPPET_WORDS})"
                             for i in range(len(VIDEO_FIELDS)))
        sql = (f"WITH matches AS (SELECT {fts}.rowid AS id, bm25({fts}, "
               f"{', '.join(map(str, VIDEO_FTS_WEIGHTS))}) AS score FROM {fts} WHERE {fts} MATCH ? "
               f"ORDER BY {fts}.rowid DESC LIMIT {SCAN_CAP}), "
               f"hits AS (SELECT id, score FROM matches ORDER BY score LIMIT ?) "
               f"SELECT d.video_id, -hits.score, v.url, v.kind, v.title, v.channel, "
               f"v.upload_date, {', '.join(f'd.{f}' for f in VIDEO_FIELDS)}, {snippets} "
               f"FROM hits JOIN {fts} ON {fts}.rowid = hits.id "
               f"JOIN search_videos d ON d.id = hits.id JOIN videos v ON v.id = d.video_id "
               f"WHERE {fts} MATCH ? ORDER BY hits.score, d.video_id")
        return [video_hit(row) for row in self._run_match(sql, match, query.limit)]

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """The best `query.limit` matches in one index, best first."""
        if query.where == "videos":
            return self._search_videos(query)
        claims = query.where == "claims"
        table = "search_claims" if claims else "search_passages"
        fts = f"{table}_fts"
        rank = f"bm25({fts}, {', '.join(map(str, CLAIM_WEIGHTS if claims else PASSAGE_WEIGHTS))})"
        columns = "text evidence" if claims else "text"
        match, shown = _filtered(query, columns, "pairs"), _filtered(query, columns)
        # a claim's snippet comes from whichever of text and evidence holds the match
        snippets = ", ".join(f"snippet({fts}, {col}, '{MARK}', '{MARK}', '…', "
                             f"{SNIPPET_WORDS})" for col in ((0, 1) if claims else (0,)))
        cols = ("d.text, d.evidence, d.type, d.start_s, d.end_s, d.rank, d.importance, NULL"
                if claims else
                "d.text, NULL, NULL, d.start_s, d.end_s, NULL, NULL, d.marks")
        sql = (f"WITH matches AS (SELECT {fts}.rowid AS id, {rank} AS score FROM {fts} "
               f"WHERE {fts} MATCH ? ORDER BY {fts}.rowid DESC LIMIT {SCAN_CAP}), "
               f"hits AS (SELECT id, score FROM matches ORDER BY score LIMIT ?) "
               f"SELECT d.video_id, d.idx, -hits.score, highlight({fts}, 0, char(1), "
               f"char(2)), {cols}, v.url, v.kind, v.title, v.channel, v.upload_date, "
               f"{snippets} FROM hits JOIN {fts} ON {fts}.rowid = hits.id "
               f"JOIN {table} d ON d.id = hits.id JOIN videos v ON v.id = d.video_id "
               f"WHERE {fts} MATCH ? ORDER BY hits.score, d.video_id, d.idx")
        hits = []
        for (vid, idx, score, highlighted, text, evidence, ctype, start, end, crank,
             importance, marks, url, vkind, title, channel, date, *snips) in \
                self._run_match(sql, match, query.limit, shown):
            if marks is not None:  # a passage: the time of the segment holding the match
                p = Passage(idx, start, end, text,
                            tuple((int(o), float(s)) for o, s in json.loads(marks)))
                start = p.time_at(first_mark(highlighted, _HIT))
            snippet = next((x for x in snips if MARK in x), snips[0])
            hits.append(SearchHit(
                kind="claim" if claims else "transcript", video_id=vid,
                idx=idx, score=float(score), snippet=snippet, text=text, start_s=start,
                end_s=end, url=url, video_kind=vkind, title=title, channel=channel,
                upload_date=date, evidence=evidence, type=ctype, rank=crank,
                importance=importance))
        return hits

    def video_claims(self, video_id: str, limit: int = 5) -> tuple[int, list[ClaimDoc]]:
        """(claims indexed for the video, the first `limit` by rank)."""
        n = self.conn.execute("SELECT count(*) FROM search_claims WHERE video_id = ?",
                              (video_id,)).fetchone()[0]
        top = [ClaimDoc(*r) for r in self.conn.execute(
            "SELECT idx, text, evidence, type, start_s, end_s, rank, importance FROM "
            "search_claims WHERE video_id = ? ORDER BY rank IS NULL, rank, importance DESC, "
            "idx LIMIT ?", (video_id, limit))]
        return int(n), top

    # ------------------------------------------------------------------ listings

    def find_videos(self, *, state: str | None = None, kind: str | None = None,
                    error_kind: str | None = None, channel: str | None = None,
                    limit: int | None = None) -> list[VideoRow]:
        """Videos matching every filter given, in the order they were added."""
        where, params = video_filters(state, kind, error_kind, channel)
        sql = f"SELECT {_COLUMNS} FROM videos{where} ORDER BY rowid LIMIT ?"
        return [self._video_row(r) for r in self.conn.execute(
            sql, (*params, -1 if limit is None else limit))]

    def event_log(self, *, after: int = 0, video_id: str | None = None,
                  stage: str | None = None, kind: str | None = None,
                  limit: int = 100) -> list[LogEvent]:
        """The newest `limit` events after id `after` that match, oldest first."""
        where, params = ["id > ?"], list[Any]([after])
        for col, value in (("video_id", video_id), ("stage", stage), ("kind", kind)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        rows = self.conn.execute(
            "SELECT id, at, video_id, stage, event, kind, message FROM events WHERE "
            f"{' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [LogEvent(*r) for r in reversed(rows)]
