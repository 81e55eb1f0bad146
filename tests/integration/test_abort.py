"""Blocking work stops when the task waiting for it is cancelled (shutdown, a lost
lease), so `daemon.shutdown_grace_s` bounds the stop: yt-dlp at its next progress
report, analysis at its next decoded block."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_download import ctx_for, item, server  # noqa: F401 (fixture)
from ytpiped.abort import Aborted, in_thread
from ytpiped.audio.analysis import analyze_path
from ytpiped.download import ytdlp
from ytpiped.stages.download import DownloadStage
from ytpiped.testing.media_server import MediaServer


async def test_a_cancelled_caller_sets_the_abort_event_of_its_thread() -> None:
    started, seen = threading.Event(), threading.Event()

    def work(*, abort: threading.Event) -> None:
        started.set()
        if abort.wait(30):
            seen.set()

    task = asyncio.create_task(in_thread(work))
    await asyncio.to_thread(started.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(seen.wait, 30)


def test_analysis_stops_at_the_next_block_once_aborted(media: Path) -> None:
    abort = threading.Event()
    abort.set()
    with pytest.raises(Aborted):
        analyze_path(media / "long.opus", max_chunk_s=30, abort=abort)


@pytest.mark.slow
async def test_a_cancelled_download_stops_yt_dlp_instead_of_finishing_it(
        server: MediaServer, tmp_path: Path) -> None:  # noqa: F811
    outcome: list[Any] = []
    ended = threading.Event()

    def fetch(*args: Any, **kwargs: Any) -> Any:
        try:
            got = ytdlp.fetch(*args, **kwargs)
            outcome.append(got)
            return got
        except BaseException as exc:
            outcome.append(exc)
            raise
        finally:
            ended.set()

    ctx = ctx_for(tmp_path)
    audio = tmp_path / "audio"
    # ~150 kB at 20 kB/s: about 7 s of download, cancelled as soon as data arrives
    run = asyncio.create_task(DownloadStage(fetcher=fetch).run(
        item(server.media_url("long.opus", slow=20_000), "abortvid001"), ctx))

    def downloading() -> bool:
        return any(p.stat().st_size > 0 for p in audio.glob("abortvid001*")) \
            if audio.is_dir() else False

    async with asyncio.timeout(60):
        while not downloading():  # noqa: ASYNC110 (a file written by yt-dlp's thread)
            await asyncio.sleep(0.02)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert await asyncio.to_thread(ended.wait, 60)
    assert len(outcome) == 1 and isinstance(outcome[0], BaseException), outcome
    assert "cancelled" in str(outcome[0]).lower()
