"""The worker indexes a transcript and a mining result in the transaction that records it;
`reindex` rebuilds the same indexes from the files."""

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


def mined(vid: str) -> dict[str, object]:
    return {"video_id": vid, "claims": [
        {"text": f"claim {i} of {vid}", "evidence": f"quote {i} on glaciers", "start": 5.0 * i,
         "rank": i + 1, "duplicate_of": None} for i in range(3)]
        + [{"text": "a duplicate about glaciers", "duplicate_of": 0}]}


class WritingStage(FakeStage):
    """Writes what the real stage would: the JSON transcript or the mining result."""

    async def run(self, item: Item, ctx: Context) -> Outcome:
        out = await super().run(item, ctx)
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
    cols = "video_id, idx, start_s, end_s, text, marks" if name == "search_passages" else \
        "video_id, idx, text, evidence, type, start_s, end_s, rank, importance"
    return db.conn.execute(f"SELECT {cols} FROM {name} ORDER BY video_id, idx").fetchall()


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
        assert db.search_counts() == {"claims": 9, "passages": 6, "videos": 3}
        before = (table(db, "search_passages"), table(db, "search_claims"),
                  found(db, "glaciers", "claims"), found(db, "weather OR segment",
                                                         "transcripts"))
        assert len(before[2]) == 9 and "duplicate" not in str(before[2])
        done = search.reindex(db, data_dir)
        assert done.to_json() == {"videos": 3, "passages": 6, "claims": 9}
        after = (table(db, "search_passages"), table(db, "search_claims"),
                 found(db, "glaciers", "claims"), found(db, "weather OR segment",
                                                        "transcripts"))
        assert after == before
        # the FTS5 index itself agrees with its content table
        db.conn.execute("INSERT INTO search_claims_fts (search_claims_fts) VALUES "
                        "('integrity-check')")
        db.conn.execute("INSERT INTO search_passages_fts (search_passages_fts) VALUES "
                        "('integrity-check')")
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
