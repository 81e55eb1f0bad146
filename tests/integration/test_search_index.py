"""The worker indexes a video's metadata, its transcript and its mining result in the
transaction that records each; `reindex` rebuilds the same indexes from the files (the
metadata of a video without DATA/meta/<id>.json from what the store kept)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_worker import fast_settings, seed, start
from ytpiped import search
from ytpiped.stages.base import Context, Item, Outcome
from ytpiped.store import SqliteDB, db_path
from ytpiped.store.search import SearchQuery, parse
from ytpiped.testing.stages import FakeStage

IDS = ["idxvideo001", "idxvideo002", "idxvideo003"]


def transcript(vid: str) -> dict[str, object]:
    return {"video_id": vid, "segments": [
        {"start": 10.0 * i, "end": 10.0 * i + 9, "text": f"segment {i} of {vid} about "
         + ("volcanoes" if i == 4 else "weather")} for i in range(8)]}


def meta(vid: str) -> dict[str, object]:
    return {"id": vid, "title": f"title of {vid}", "channel": "Weather Hour",
            "upload_date": "20240301", "description": f"{vid} flies over the tundra",
            "tags": ["storms", "polar air"],
            "chapters": [{"start": 0.0, "end": 40.0, "title": "Permafrost"}]}


def mined(vid: str) -> dict[str, object]:
    return {"video_id": vid, "claims": [
        {"text": f"claim {i} of {vid}", "evidence": f"quote {i} on glaciers", "start": 5.0 * i,
         "rank": i + 1, "duplicate_of": None} for i in range(3)]
        + [{"text": "a duplicate about glaciers", "duplicate_of": 0}]}


class WritingStage(FakeStage):
    """Writes what the real stage would: the JSON transcript or the mining result."""

    async def run(self, item: Item, ctx: Context) -> Outcome:
        out = await super().run(item, ctx)
        if self.name == "download":
            if item.id != "idxvideo003":  # its metadata is only in the store
                path = ctx.data_dir / "meta" / f"{item.id}.json"
                path.parent.mkdir(exist_ok=True)
                path.write_text(json.dumps(meta(item.id)))
            return Outcome(fields={**out.fields, "channel": "Weather Hour",
                                   "upload_date": "20240301"},
                           info={"meta": meta(item.id)})
        if item.id == "idxvideo003" and self.name == "transcribe":
            path = ctx.data_dir / "transcripts" / f"{item.id}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text("{broken")  # unreadable: indexed by nothing, the video goes on
        elif self.name == "transcribe":
            path = ctx.data_dir / "transcripts" / f"{item.id}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(transcript(item.id)))
        elif self.name == "evaluate":
            path = ctx.data_dir / "mining" / f"{item.id}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(mined(item.id)))
        return out


def table(db: SqliteDB, name: str) -> list[tuple[object, ...]]:
    cols = {"search_passages": "video_id, idx, start_s, end_s, text, marks",
            "search_claims": "video_id, idx, text, evidence, type, start_s, end_s, rank, "
                             "importance",
            "search_videos": "video_id, 0, title, tags, chapters, channel, description, "
                             "facets"}[name]
    return db.conn.execute(f"SELECT {cols} FROM {name} ORDER BY video_id, 2").fetchall()

NAMES = ("search_passages", "search_claims", "search_videos")


def found(db: SqliteDB, text: str, where: str) -> list[tuple[object, ...]]:
    return [(h.video_id, h.idx, h.start_s, h.snippet, round(h.score, 9)) for h in
            db.search(SearchQuery(parse(text), where, limit=100))]  # type: ignore[arg-type]


async def test_the_pipeline_indexes_and_reindex_rebuilds_the_same(data_dir: Path) -> None:
    seed(data_dir, IDS)
    stages = [WritingStage(n) for n in ("download", "analyze", "transcribe", "mine",
                                        "evaluate")]
    d, out, task = await start(fast_settings(data_dir), stages)
    await out.wait(lambda ev: sum(1 for e in ev if e[0] == "completed") == 15)
    d.stop.set()
    assert await task == 0
    db = SqliteDB(db_path(data_dir))
    try:
        assert db.counts()["done"] == 3
        hits = found(db, "volcanoes", "transcripts")
        assert [(v, t) for v, _, t, _, _ in hits] == [("idxvideo001", 40.0),
                                                      ("idxvideo002", 40.0)]
        assert db.search_counts() == {"claims": 9, "passages": 6, "metadata": 3,
                                      "videos": 3}
        for word in ("tundra", "polar", "permafrost"):  # description, tags, chapters
            assert [h[0] for h in found(db, word, "videos")] == IDS
        assert found(db, "tundra", "claims") == found(db, "tundra", "transcripts") == []

        def indexed() -> tuple[object, ...]:
            return (*(table(db, n) for n in NAMES), found(db, "glaciers", "claims"),
                    found(db, "weather OR segment", "transcripts"),
                    found(db, "tundra OR storms OR title", "videos"))

        before = indexed()
        assert len(before[3]) == 9 and "duplicate" not in str(before[3])
        done = search.reindex(db, data_dir)
        assert done.to_json() == {"videos": 3, "passages": 6, "claims": 9, "metadata": 3}
        assert indexed() == before
        # the FTS5 indexes themselves agree with their content tables
        for name in NAMES:
            db.conn.execute(f"INSERT INTO {name}_fts ({name}_fts) VALUES ('integrity-check')")
    finally:
        db.close()


def test_reindex_picks_up_files_changed_behind_the_index(data_dir: Path) -> None:
    seed(data_dir, IDS[:1])
    db = SqliteDB(db_path(data_dir), now=0)
    try:
        (data_dir / "mining").mkdir()
        (data_dir / "mining" / f"{IDS[0]}.json").write_text(json.dumps(mined(IDS[0])))
        assert found(db, "glaciers", "claims") == []
        assert search.reindex(db, data_dir).claims == 3
        assert len(found(db, "glaciers", "claims")) == 3
        (data_dir / "mining" / f"{IDS[0]}.json").unlink()
        assert search.reindex(db, data_dir).videos == 0
        assert found(db, "glaciers", "claims") == []
    finally:
        db.close()
