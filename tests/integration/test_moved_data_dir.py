"""Paths in the database are relative to the data dir: a data dir moved to a bigger disk
keeps working, and absolute paths an older version stored are made relative at start."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from tests.integration.test_worker import Outcomes, fast_settings
from ytpiped.daemon import Daemon
from ytpiped.stages.analyze import AnalyzeStage
from ytpiped.stages.download import DownloadStage
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.media_server import MediaServer
from ytpiped.urls import generic_id


async def run_stage(data: Path, stage: DownloadStage | AnalyzeStage, n: int) -> None:
    out = Outcomes()
    settings = fast_settings(data, **{"download.delay_buffer_build_s": [0, 0],
                                      "download.other_hosts_delay_s": [0, 0]})
    d = Daemon(settings, stages=[stage], environ={}, on_outcome=out)
    task = asyncio.create_task(d.serve())
    await out.wait(lambda ev: sum(1 for e in ev if e[0] == "completed") == n, 120)
    d.stop.set()
    assert await task == 0


async def test_a_moved_data_dir_keeps_its_audio(tmp_path: Path) -> None:
    old, new = tmp_path / "small-disk" / "data", tmp_path / "big-disk" / "data"
    async with MediaServer() as media:
        urls = [media.media_url("solar.webm"), media.media_url("coffee.m4a")]
        ids = [generic_id(u) for u in urls]
        s = SqliteDB(db_path(old), now=0)
        s.add_videos([NewVideo(i, u, "generic") for i, u in zip(ids, urls, strict=True)],
                     now=0)
        s.close()
        await run_stage(old, DownloadStage(), 2)
    s = SqliteDB(db_path(old), now=0)
    stored = [s.get(i).audio_path for i in ids]  # type: ignore[union-attr]
    assert all(p and not Path(p).is_absolute() and p.startswith("audio/") for p in stored)
    # the second row as an older version stored it: an absolute path into the old place
    s.conn.execute("UPDATE videos SET audio_path = ? WHERE id = ?",
                   (str(old / stored[1]), ids[1]))
    s.close()
    new.parent.mkdir(parents=True)
    shutil.move(str(old), str(new))
    await run_stage(new, AnalyzeStage(), 2)
    s = SqliteDB(db_path(new), readonly=True)
    rows = [s.get(i) for i in ids]
    s.close()
    assert [(r.state, r.audio_path) for r in rows if r] == [("analyzed", p) for p in stored]
