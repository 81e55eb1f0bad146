"""What the video index holds of a video: its metadata's document, built when the download
stage records the metadata and by `reindex` (from DATA/meta/<id>.json, else the row)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ytpiped import search
from ytpiped.errors import UsageError
from ytpiped.store.model import VideoRow
from ytpiped.store.search import VideoDoc, video_doc

META = {"title": " Island\nwalk ", "channel": None, "uploader": "Ann",
        "description": "\n Lava flows.\n\nThen rain. ", "tags": ["geology", " ", 7],
        "chapters": [{"start": 0.0, "end": 9.0, "title": "Start"}, {"title": None}, "x",
                     {"start": 9.0, "end": 20.0, "title": "Magma  chambers"}]}


def row(vid: str, kind: str = "video", title: str | None = None,
        channel: str | None = None, info: dict[str, object] | None = None) -> VideoRow:
    return VideoRow(vid, f"https://example.org/{vid}", kind, None, title, channel, None, None,
                    None, None, "done", 0, 0.0, None, None, None, None, None, info or {}, 0.0,
                    0.0)


def test_video_doc_joins_tags_and_chapter_titles_and_prefers_the_rows_title() -> None:
    doc = video_doc(META)
    assert doc == VideoDoc(title="Island walk", tags="geology, 7",
                           chapters="Start · Magma chambers", channel="Ann",
                           description="Lava flows.\n\nThen rain.")
    assert video_doc(META, "Row title", "Row channel").texts()[::3] == \
        ("Row title", "Row channel")
    assert video_doc({"tags": "not a list", "chapters": {}}) == VideoDoc()
    assert video_doc(None).empty and VideoDoc(title=" – ").empty
    assert not VideoDoc(tags="x").empty


def test_the_download_stage_indexes_its_metadata_and_its_subtitles_transcript(
        tmp_path: Path) -> None:
    docs = search.stage_docs("download", tmp_path, "vid", {"meta": META, "sponsorblock": []})
    assert docs is not None and docs.video == video_doc(META)
    assert docs.passages is None and docs.claims is None  # the other indexes stay
    # the video's own subtitles were its transcript: its passages come with it
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / "vid.json").write_text(json.dumps(
        {"segments": [{"start": 1.0, "end": 3.0, "text": "hello from the subtitles"}]}))
    docs = search.stage_docs("download", tmp_path, "vid", {
        "meta": META, "transcript": {"paths": ["transcripts/vid.json"]}})
    assert docs is not None and docs.video == video_doc(META)
    assert [p.text for p in docs.passages or ()] == ["hello from the subtitles"]
    # a playlist's expansion keeps no metadata: the indexes are left alone
    assert search.stage_docs("download", tmp_path, "PL1", {"expanded": 3}) is None


def test_reindex_reads_the_meta_file_else_what_the_row_kept(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "a.json").write_text(json.dumps(META))
    (tmp_path / "meta" / "broken.json").write_text("{no")
    kept = {"meta": {"description": "kept in the store"}}
    assert search.metadata_doc(tmp_path, row("a", info=kept)) == video_doc(META)
    assert search.metadata_doc(tmp_path, row("broken", info=kept)) == \
        VideoDoc(description="kept in the store")
    assert search.metadata_doc(tmp_path, row("old", title="Old talk", channel="C")) == \
        VideoDoc(title="Old talk", channel="C")  # from before metadata was kept
    assert search.metadata_doc(tmp_path, row("queued")) is None  # nothing known yet
    assert search.metadata_doc(tmp_path, row("PL", "playlist", title="A list")) is None
    docs = search.video_docs(tmp_path, row("old", "generic", title="Old talk"))
    assert docs.video == VideoDoc(title="Old talk") and docs.passages is docs.claims is None


def test_in_videos_searches_the_video_index_and_all_searches_three() -> None:
    assert [q.where for q in search.queries("lava", "videos")] == ["videos"]
    assert [q.where for q in search.queries("lava")] == ["claims", "transcripts", "videos"]
    with pytest.raises(UsageError, match="claims, transcripts, videos or all"):
        search.queries("lava", "chapters")  # type: ignore[arg-type]
