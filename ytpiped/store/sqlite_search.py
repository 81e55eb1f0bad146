"""The SQLite side of search and the listings (`search`, `ls`, `show`, `logs`): FTS5 indexes
of transcript passages and evaluated claims (schema version 4), ranked by bm25, and the
filtered reads of videos and events. `SqliteDB` inherits these methods."""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ytpiped.store.model import LogEvent, VideoRow, video_filters
from ytpiped.store.search import (
    MARK,
    SNIPPET_WORDS,
    ClaimDoc,
    Passage,
    QuerySyntaxError,
    SearchDocs,
    SearchHit,
    SearchQuery,
    first_mark,
    fts5_query,
)

#: bm25 weight of a claim's text against its evidence
CLAIM_WEIGHTS = (2.0, 1.0)
#: matches ranked per query, newest first: a word so common that it matches more rows
#: (where bm25 says least anyway) is ranked among its most recent matches, so that a
#: query costs the same on 7,000 videos as on 700
SCAN_CAP = 20_000
_HIT = "\x01"  # marks the first match in highlight(), to find its time
_COLUMNS = ", ".join(VideoRow.__dataclass_fields__)


class SqliteSearch:
    """Search and listing queries over `self.conn` (mixed into SqliteDB)."""

    conn: sqlite3.Connection
    if TYPE_CHECKING:  # SqliteDB's
        def _tx(self) -> AbstractContextManager[None]: ...
        def _video_row(self, r: Any) -> VideoRow: ...

    # ------------------------------------------------------------------ the indexes

    def _write_search(self, video_id: str, docs: SearchDocs) -> None:
        """Replace the video's passages and/or claims (inside the caller's transaction)."""
        if docs.passages is not None:
            self.conn.execute("DELETE FROM search_passages WHERE video_id = ?", (video_id,))
            self.conn.executemany(
                "INSERT INTO search_passages (video_id, idx, start_s, end_s, text, marks) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(video_id, p.idx, p.start_s, p.end_s, p.text, json.dumps(p.marks))
                 for p in docs.passages])
        if docs.claims is not None:
            self.conn.execute("DELETE FROM search_claims WHERE video_id = ?", (video_id,))
            self.conn.executemany(
                "INSERT INTO search_claims (video_id, idx, text, evidence, type, start_s, "
                "end_s, rank, importance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(video_id, c.idx, c.text, c.evidence, c.type, c.start_s, c.end_s, c.rank,
                  c.importance) for c in docs.claims])

    def index_video(self, video_id: str, docs: SearchDocs) -> None:
        """Replace what the indexes hold of one video (`ytpiped reindex`)."""
        with self._tx():
            self._write_search(video_id, docs)

    def clear_search(self) -> None:
        """Empty both indexes."""
        with self._tx():
            self.conn.execute("DELETE FROM search_passages")
            self.conn.execute("DELETE FROM search_claims")
            # the external-content indexes start again from nothing
            self.conn.execute("INSERT INTO search_passages_fts (search_passages_fts) "
                              "VALUES ('delete-all')")
            self.conn.execute("INSERT INTO search_claims_fts (search_claims_fts) "
                              "VALUES ('delete-all')")

    def search_counts(self) -> dict[str, int]:
        """Rows in each index and the videos they come from."""
        claims, passages, videos = self.conn.execute(
            "SELECT (SELECT count(*) FROM search_claims), (SELECT count(*) FROM "
            "search_passages), (SELECT count(*) FROM (SELECT video_id FROM search_claims "
            "UNION SELECT video_id FROM search_passages))").fetchone()
        return {"claims": int(claims), "passages": int(passages), "videos": int(videos)}

    # ------------------------------------------------------------------ search

    def search(self, query: SearchQuery) -> list[SearchHit]:
        """The best `query.limit` matches in one index, best first."""
        table = "search_claims" if query.where == "claims" else "search_passages"
        fts = f"{table}_fts"
        rank = (f"bm25({fts}, {CLAIM_WEIGHTS[0]}, {CLAIM_WEIGHTS[1]})"
                if query.where == "claims" else f"bm25({fts})")
        where, params = [f"{fts} MATCH ?"], [fts5_query(query.node)]
        if query.channel:
            where.append("lower(v.channel) = lower(?)")
            params.append(query.channel)
        if query.since:
            where.append("v.upload_date >= ?")
            params.append(query.since)
        cols = ("d.text, d.evidence, d.type, d.start_s, d.end_s, d.rank, d.importance, NULL"
                if query.where == "claims" else
                "d.text, NULL, NULL, d.start_s, d.end_s, NULL, NULL, d.marks")
        joins = (f"JOIN {table} d ON d.id = {fts}.rowid JOIN videos v ON v.id = d.video_id "
                 if len(where) > 1 else "")  # a filter needs the video's row
        sql = (f"WITH matches AS (SELECT {fts}.rowid AS id, {rank} AS score FROM {fts} "
               f"{joins}WHERE {' AND '.join(where)} ORDER BY {fts}.rowid DESC LIMIT "
               f"{SCAN_CAP}), hits AS (SELECT id, score FROM matches ORDER BY score LIMIT ?) "
               f"SELECT d.video_id, d.idx, -hits.score, "
               f"snippet({fts}, -1, '{MARK}', '{MARK}', '…', {SNIPPET_WORDS}), "
               f"highlight({fts}, 0, char(1), char(2)), {cols}, v.url, v.kind, v.title, "
               f"v.channel, v.upload_date FROM hits JOIN {fts} ON {fts}.rowid = hits.id "
               f"JOIN {table} d ON d.id = hits.id JOIN videos v ON v.id = d.video_id "
               f"WHERE {fts} MATCH ? ORDER BY hits.score, d.video_id, d.idx")
        try:
            rows = self.conn.execute(sql, (*params, query.limit, params[0])).fetchall()
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc):  # cannot happen with parsed queries; still no traceback
                raise QuerySyntaxError(f"search query: {exc}") from None
            raise
        hits = []
        for (vid, idx, score, snippet, highlighted, text, evidence, ctype, start, end, crank,
             importance, marks, url, vkind, title, channel, date) in rows:
            if marks is not None:  # a passage: the time of the segment holding the match
                p = Passage(idx, start, end, text,
                            tuple((int(o), float(s)) for o, s in json.loads(marks)))
                start = p.time_at(first_mark(highlighted, _HIT))
            hits.append(SearchHit(
                kind="claim" if query.where == "claims" else "transcript", video_id=vid,
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
