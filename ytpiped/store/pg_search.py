"""The PostgreSQL side of search and the listings (`search`, `ls`, `show`, `logs`): stored
tsvectors under GIN indexes (schema version 4; the video index version 5), queried with
`to_tsquery` built from the parsed query (so PostgreSQL never sees a string it could fail
to parse), ranked by `ts_rank` plus a bonus for the query's words side by side;
`PostgresStore` inherits these methods."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from ytpiped.store.model import LogEvent, VideoRow, video_filters
from ytpiped.store.search import (
    MARK,
    SNIPPET_WORDS,
    VIDEO_FIELDS,
    ClaimDoc,
    Passage,
    SearchDocs,
    SearchHit,
    SearchQuery,
    first_mark,
    phrase_boost,
    tsquery_text,
    video_hit,
)

_HIT = "\x01"
_COLUMNS = ", ".join(VideoRow.__dataclass_fields__)
_SNIPPET = (f'StartSel="{MARK}", StopSel="{MARK}", MaxWords={SNIPPET_WORDS}, '
            f"MinWords={SNIPPET_WORDS // 2}, MaxFragments=1, FragmentDelimiter=\" … \"")
_VIDEO_COLS = ", ".join(VIDEO_FIELDS)
_FIRST = 'HighlightAll=true, StartSel="\x01", StopSel="\x02"'


class PgSearch:
    """Search and listing queries (mixed into PostgresStore)."""

    if TYPE_CHECKING:  # PostgresStore's
        def _tx(self) -> AbstractAsyncContextManager[Any]: ...
        async def _all(self, sql: str, params: Sequence[Any] = ()
                       ) -> list[tuple[Any, ...]]: ...
        async def _one(self, sql: str, params: Sequence[Any] = ()
                       ) -> tuple[Any, ...] | None: ...

    # ------------------------------------------------------------------ the indexes

    async def _write_search(self, conn: Any, video_id: str, docs: SearchDocs) -> None:
        """Replace the video's passages and/or claims (inside the caller's transaction)."""
        cur = conn.cursor()
        if docs.passages is not None:
            await conn.execute("DELETE FROM search_passages WHERE video_id = %s", (video_id,))
            if docs.passages:
                await cur.executemany(
                    "INSERT INTO search_passages (video_id, idx, start_s, end_s, text, marks) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [(video_id, p.idx, p.start_s, p.end_s, p.text, json.dumps(p.marks))
                     for p in docs.passages])
        if docs.claims is not None:
            await conn.execute("DELETE FROM search_claims WHERE video_id = %s", (video_id,))
            if docs.claims:
                await cur.executemany(
                    "INSERT INTO search_claims (video_id, idx, text, evidence, type, start_s, "
                    "end_s, rank, importance) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(video_id, c.idx, c.text, c.evidence, c.type, c.start_s, c.end_s, c.rank,
                      c.importance) for c in docs.claims])
        if docs.video is not None:
            await conn.execute("DELETE FROM search_videos WHERE video_id = %s", (video_id,))
            if not docs.video.empty:
                await conn.execute(
                    f"INSERT INTO search_videos (video_id, {_VIDEO_COLS}) VALUES "
                    f"(%s{', %s' * len(VIDEO_FIELDS)})", (video_id, *docs.video.texts()))

    async def index_video(self, video_id: str, docs: SearchDocs) -> None:
        async with self._tx() as conn:
            await self._write_search(conn, video_id, docs)

    async def clear_search(self) -> None:
        async with self._tx() as conn:
            await conn.execute("TRUNCATE search_passages, search_claims, search_videos")

    async def search_counts(self) -> dict[str, int]:
        row = await self._one(
            "SELECT (SELECT count(*) FROM search_claims), (SELECT count(*) FROM "
            "search_passages), (SELECT count(*) FROM search_videos), (SELECT count(*) FROM "
            "(SELECT video_id FROM search_claims UNION SELECT video_id FROM search_passages "
            "UNION SELECT video_id FROM search_videos) u)")
        assert row is not None
        return {"claims": int(row[0]), "passages": int(row[1]), "metadata": int(row[2]),
                "videos": int(row[3])}

    # ------------------------------------------------------------------ search

    @staticmethod
    def _filters(query: SearchQuery) -> tuple[list[str], list[Any]]:
        where, params = ["d.tsv @@ q.q"], list[Any]()
        if query.channel:
            where.append("lower(v.channel) = lower(%s)")
            params.append(query.channel)
        if query.since:
            where.append("v.upload_date >= %s")
            params.append(query.since)
        return where, params

    async def _search_videos(self, query: SearchQuery) -> list[SearchHit]:
        """The video index: the snippet of the first field (VIDEO_FIELDS) holding a match."""
        boost = phrase_boost(query.node)
        where, params = self._filters(query)
        heads = ", ".join(f"ts_headline('english', d.{f}, q.q, '{_SNIPPET}')"
                          for f in VIDEO_FIELDS)
        sql = (f"WITH q AS (SELECT to_tsquery('english', %s) AS q, "
               f"to_tsquery('english', %s) AS b), "
               f"hits AS (SELECT d.id, ts_rank(d.tsv, q.q) + coalesce((d.tsv @@ q.b)::int, 0) "
               f"AS score FROM search_videos d JOIN videos v ON v.id = d.video_id, q "
               f"WHERE {' AND '.join(where)} ORDER BY score DESC, d.video_id LIMIT %s) "
               f"SELECT d.video_id, hits.score, v.url, v.kind, v.title, v.channel, "
               f"v.upload_date, {', '.join(f'd.{f}' for f in VIDEO_FIELDS)}, {heads} "
               f"FROM hits JOIN search_videos d ON d.id = hits.id "
               f"JOIN videos v ON v.id = d.video_id, q ORDER BY hits.score DESC, d.video_id")
        rows = await self._all(sql, (tsquery_text(query.node),
                                     None if boost is None else tsquery_text(boost),
                                     *params, query.limit))
        return [video_hit(row) for row in rows]

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        if query.where == "videos":
            return await self._search_videos(query)
        claims = query.where == "claims"
        table = "search_claims" if claims else "search_passages"
        boost = phrase_boost(query.node)
        where, params = self._filters(query)
        cols = ("d.text, d.evidence, d.type, d.start_s, d.end_s, d.rank, d.importance, NULL, "
                f"ts_headline('english', d.evidence, q.q, '{_SNIPPET}')" if claims else
                "d.text, NULL, NULL, d.start_s, d.end_s, NULL, NULL, d.marks, "
                f"ts_headline('english', d.text, q.q, '{_FIRST}')")
        sql = (f"WITH q AS (SELECT to_tsquery('english', %s) AS q, "
               f"to_tsquery('english', %s) AS b), "
               f"hits AS (SELECT d.id, ts_rank(d.tsv, q.q) + coalesce((d.tsv @@ q.b)::int, 0) "
               f"AS score FROM {table} d JOIN videos v ON v.id = d.video_id, q "
               f"WHERE {' AND '.join(where)} ORDER BY score DESC, d.video_id, d.idx LIMIT %s) "
               f"SELECT d.video_id, d.idx, hits.score, "
               f"ts_headline('english', d.text, q.q, '{_SNIPPET}'), {cols}, v.url, v.kind, "
               f"v.title, v.channel, v.upload_date FROM hits JOIN {table} d ON d.id = hits.id "
               f"JOIN videos v ON v.id = d.video_id, q ORDER BY hits.score DESC, d.video_id, "
               f"d.idx")
        rows = await self._all(sql, (tsquery_text(query.node),
                                     None if boost is None else tsquery_text(boost),
                                     *params, query.limit))
        hits = []
        for (vid, idx, score, snippet, text, evidence, ctype, start, end, crank, importance,
             marks, other, url, vkind, title, channel, date) in rows:
            if marks is not None:  # a passage: the time of the segment holding the match
                p = Passage(idx, start, end, text,
                            tuple((int(o), float(s)) for o, s in json.loads(marks)))
                start = p.time_at(first_mark(other, _HIT))
            elif MARK not in snippet and MARK in (other or ""):
                snippet = other  # the claim matched by its evidence
            hits.append(SearchHit(
                kind="claim" if claims else "transcript", video_id=vid, idx=int(idx),
                score=float(score), snippet=snippet, text=text, start_s=start, end_s=end,
                url=url, video_kind=vkind, title=title, channel=channel, upload_date=date,
                evidence=evidence, type=ctype, rank=crank, importance=importance))
        return hits

    async def video_claims(self, video_id: str, limit: int = 5) -> tuple[int, list[ClaimDoc]]:
        row = await self._one("SELECT count(*) FROM search_claims WHERE video_id = %s",
                              (video_id,))
        top = [ClaimDoc(*r) for r in await self._all(
            "SELECT idx, text, evidence, type, start_s, end_s, rank, importance FROM "
            "search_claims WHERE video_id = %s ORDER BY rank NULLS LAST, importance DESC "
            "NULLS LAST, idx LIMIT %s", (video_id, limit))]
        return int(row[0]) if row else 0, top

    # ------------------------------------------------------------------ listings

    async def find_videos(self, *, state: str | None = None, kind: str | None = None,
                          error_kind: str | None = None, channel: str | None = None,
                          limit: int | None = None) -> list[VideoRow]:
        where, params = video_filters(state, kind, error_kind, channel, mark="%s")
        sql = f"SELECT {_COLUMNS} FROM videos{where}"
        return [VideoRow(*r) for r in await self._all(sql + " ORDER BY seq LIMIT %s",
                                                        (*params, limit))]

    async def event_log(self, *, after: int = 0, video_id: str | None = None,
                        stage: str | None = None, kind: str | None = None,
                        limit: int = 100) -> list[LogEvent]:
        where, params = ["id > %s"], list[Any]([after])
        for col, value in (("video_id", video_id), ("stage", stage), ("kind", kind)):
            if value is not None:
                where.append(f"{col} = %s")
                params.append(value)
        rows = await self._all(
            "SELECT id, at, video_id, stage, event, kind, message, host FROM events WHERE "
            f"{' AND '.join(where)} ORDER BY id DESC LIMIT %s", (*params, limit))
        return [LogEvent(int(i), float(at), *rest) for i, at, *rest in reversed(rows)]
