"""Mine and evaluate under the real daemon (worker, SQLite) against FakeOllama over HTTP.

A server that is busy, dropping connections or not answering for a long stretch pauses
both stages (no video fails, no attempt is spent) and everything finishes once it
recovers; a window whose replies stay invalid fails its video as `mining_incomplete`, and
`retry` then mines only that window."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests import dbview
from tests.integration.test_mining_stage import TOPICS, claims_answered
from tests.mining_ctx import write_transcript
from ytpiped import config
from ytpiped.clock import SystemClock
from ytpiped.daemon import Daemon
from ytpiped.mining.runner import Runtime
from ytpiped.stages.evaluate import EvaluateStage
from ytpiped.stages.mine import MineStage
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama

IDS = ["outage00001", "outage00002", "outage00003"]


def fast(data: Path, url: str, **extra: Any) -> config.Settings:
    """Durations shrunk so that a long outage takes a second: pauses of 20 ms doubling up
    to 100 ms, two tries per request, two attempts per video. Requests time out after
    30 s, so that a loaded machine cannot turn a slow answer into an outage (the stall
    case shortens it)."""
    flags: dict[str, Any] = {
        "data_dir": str(data), "mine.hosts": [url], "mine.window_tokens": 100,
        "mine.overlap_tokens": 20, "mine.num_ctx": 4096, "mine.workers": 2,
        "mine.retry_base_s": 0.001, "mine.window_attempts": 2, "mine.request_timeout_s": 30.0,
        "mine.unavailable_backoff_s": 0.02, "mine.max_unavailable_backoff_s": 0.1,
        "download.max_attempts": 2, "daemon.poll_interval_s": 0.05,
        "daemon.retry_base_s": 0.01, "daemon.retry_max_s": 0.05,
        "daemon.shutdown_grace_s": 5.0}
    flags.update(extra)
    return config.load(flags=flags)


def seed_transcribed(data: Path, ids: list[str]) -> None:
    s = SqliteDB(db_path(data), now=0)
    s.add_videos([NewVideo(v, f"https://example.org/{v}", "video") for v in ids], now=0)
    for v in ids:
        write_transcript(data, v, TOPICS)
        s.conn.execute("UPDATE videos SET state = 'transcribed', title = ? WHERE id = ?",
                       (f"Episode {v}", v))
    s.close()


async def run_until(settings: config.Settings, done: Callable[[Mapping[str, int]], bool],
                    seen: list[tuple[str, str, str, str | None, dict[str, Any]]]) -> None:
    """Run the daemon with the mine and evaluate stages until `done(counts)` holds; every
    outcome is appended to `seen` with the mine stage's live status at that moment."""
    reached = asyncio.Event()
    d: Daemon

    def observer(stage: str, event: str, video_id: str, kind: str | None) -> None:
        seen.append((stage, event, video_id, kind, dict(d.live.get(stage, {}))))
        if done(dbview.counts(settings.data_path)):
            reached.set()

    clock = SystemClock()
    llm = Runtime.from_config(settings.mine, clock)
    d = Daemon(settings, stages=[MineStage(llm), EvaluateStage(llm)], environ={}, clock=clock,
               on_outcome=observer)
    task = asyncio.create_task(d.serve())
    try:
        async with asyncio.timeout(60):
            await asyncio.wait({task, asyncio.ensure_future(reached.wait())},
                               return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), "the daemon stopped by itself"
    finally:
        d.stop.set()
        assert await task == 0


def finished(n: int) -> Callable[[Mapping[str, int]], bool]:
    return lambda c: c["done"] + c["failed"] == n


OUTAGES = [("503", 60, "llm_busy"), ("drop", 40, "llm_disconnected"),
           ("stall", 8, "llm_timeout")]


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "times", "kind"), OUTAGES, ids=[m for m, _, _ in OUTAGES])
async def test_a_long_llm_outage_pauses_mining_and_fails_no_video(
        data_dir: Path, mode: str, times: int, kind: str) -> None:
    seed_transcribed(data_dir, IDS)
    seen: list[tuple[str, str, str, str | None, dict[str, Any]]] = []
    async with FakeOllama(parallel=2, latency_s=0.005) as fake:
        # every request fails, far more often than a video has tries; then it recovers
        fake.inject(mode, times=times)
        with capture_logs() as logs:
            # a stalled request ends when the client gives up: after 1 s here
            timeout = {"mine.request_timeout_s": 1.0} if mode == "stall" else {}
            await run_until(fast(data_dir, fake.url, **timeout), finished(len(IDS)), seen)
        assert not fake.faults  # the whole outage was lived through
    s = SqliteDB(db_path(data_dir), readonly=True)
    rows = [s.get(v) for v in IDS]
    assert [(r.state, r.attempts) for r in rows if r] == [("done", 0)] * len(IDS)
    assert not [e for e in seen if e[1] in ("retry", "failed")]
    cooled = [e for e in seen if e[1] == "cooldown"]
    assert cooled and {e[3] for e in cooled} == {kind}
    # the pause is in the mine stage's published status (what `ytpiped status` shows)
    shown = [e[4] for e in cooled if e[0] == "mine" and e[4].get("llm") == "cooldown"]
    assert shown and shown[0]["cooldown_kind"] == kind and shown[0]["cooldown_until"]
    assert "no video loses an attempt" in shown[0]["alerts"][0]
    assert s.event_counts_by_kind("cooldown") == {kind: len(cooled)}
    s.close()
    # logged once per change of state, not per failed request
    paused = [e for e in logs if e["event"] in ("llm_paused", "llm_pause_extended")]
    assert [e["level"] for e in paused] == list(range(1, len(paused) + 1))
    # the gates held claims during each pause: only the videos in flight when it began (and
    # the tries right after it) went back, no video cycled claim -> cooldown meanwhile
    assert len(cooled) <= 4 * (len(paused) + 1)
    assert paused[0]["event"] == "llm_paused" and paused[0]["kind"] == kind
    waits = [e["wait_s"] for e in paused]
    assert len(waits) >= 2  # the first try after a pause failed too: a longer pause
    assert waits == [min(0.1, 0.02 * 2 ** i) for i in range(len(waits))]  # doubling, capped
    assert [e["event"] for e in logs].count("llm_resumed") == 1
    for v in IDS:
        doc = json.loads((data_dir / "mining" / f"{v}.json").read_text())
        assert sorted(c["text"] for c in doc["claims"]) == claims_answered(fake)


async def test_windows_still_invalid_fail_the_video_and_retry_mines_only_them(
        data_dir: Path) -> None:
    vid = "partial0001"
    seed_transcribed(data_dir, [vid])
    seen: list[tuple[str, str, str, str | None, dict[str, Any]]] = []
    async with FakeOllama(parallel=2, latency_s=0.005) as fake:
        # TOPICS[6] is in window 1 only: its reply and its repair, on both attempts
        fake.inject("schema", times=4, match=TOPICS[6], title="WindowResult")
        settings = fast(data_dir, fake.url)
        await run_until(settings, finished(1), seen)
        s = SqliteDB(db_path(data_dir), readonly=True)
        row = s.get(vid)
        assert row is not None
        assert (row.state, row.failed_stage, row.error_kind, row.attempts) == \
            ("failed", "mine", "mining_incomplete", 2)
        assert row.error is not None and row.error.startswith(
            "1 of 4 windows could not be mined (invalid LLM output after repair)")
        assert [e[1] for e in seen] == ["retry", "failed"]
        assert not (data_dir / "mining" / f"{vid}.json").exists()
        failed_events = [e for e in s.events_of(vid) if e[2] == "window_failed"]
        s.close()
        assert len(failed_events) == 2 and "window 1" in (failed_events[0][4] or "")
        before = len(fake.chat_bodies())

        # `ytpiped retry`, then the daemon again: only the failed window is asked again
        rw = SqliteDB(db_path(data_dir), now=0)
        assert rw.retry_failed(1.0) == 1
        assert (rw.get(vid) or row).state == "transcribed"
        rw.close()
        await run_until(settings, lambda c: c["done"] == 1, seen)
        again = fake.chat_bodies()[before:]
    titles = [b["format"]["title"] for b in again]
    assert titles == ["WindowResult", "Evaluation"]
    assert TOPICS[6] in again[0]["messages"][-1]["content"]
    doc = json.loads((data_dir / "mining" / f"{vid}.json").read_text())
    assert sorted(c["text"] for c in doc["claims"]) == claims_answered(fake)
    assert doc["failed_windows"] == []
