"""The download circuit breaker on the real daemon (`ytpiped run` as a subprocess), real
yt-dlp against the media server: a site that answers 403 to every download pauses the
queue instead of failing it; once the site is fixed, a probe resumes it; a queue that
mixes failing and good URLs never trips it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import cli, counts, start_daemon, wait_for, youtube_env, youtube_urls
from ytpiped import control
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer

CLIPS = ("solar.webm", "coffee.m4a", "ocean.mp3", "long.opus")
FACTORY = "ytpiped.testing.stages:download_pipeline"


def env(media: MediaServer, **extra: str) -> dict[str, str]:
    base = {**youtube_env(media),"YTPIPED_DAEMON__STAGE_FACTORY": FACTORY,
            "YTPIPED_DOWNLOAD__DELAY_BUFFER_BUILD_S": "[0, 0]",
            "YTPIPED_DOWNLOAD__DELAY_STEADY_S": "[0, 0]",
            "YTPIPED_DOWNLOAD__DELAY_CATCH_UP_S": "[0, 0]",
            "YTPIPED_DOWNLOAD__BREAKER_THRESHOLD": "5"}
    return {**base, **extra}


def add_one_by_one(data_dir: Path, urls: list[str], extra: dict[str, str]) -> None:
    """One `add` per URL: rows are then claimed in this order."""
    for url in urls:
        r = cli(data_dir, "add", url, extra_env=extra)
        assert r.returncode == 0 and r.stdout.startswith("added 1,"), r.stderr


def rows(data_dir: Path) -> dict[str, tuple[str, int, str | None]]:
    s = SqliteDB(db_path(data_dir), readonly=True)
    try:
        return {v.id: (v.state, v.attempts, v.error_kind) for v in s.videos(limit=100)}
    finally:
        s.close()


def events(data_dir: Path, name: str) -> int:
    s = SqliteDB(db_path(data_dir), readonly=True)
    try:
        return s.event_count("download", name, 0.0)
    finally:
        s.close()


def published(data_dir: Path) -> tuple[dict[str, object], float]:
    s = SqliteDB(db_path(data_dir), readonly=True)
    try:
        got = s.get_state("stage:download")
        return ({}, 0.0) if got is None else (dict(got[0]), got[1])
    finally:
        s.close()


def stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0


def eight_urls(media: MediaServer) -> list[str]:
    """Eight videos on the fake YouTube (the breaker is YouTube's: another host's failures
    do not feed it)."""
    return youtube_urls(media, [f"{CLIPS[i % len(CLIPS)]}?copy={i}" for i in range(8)])


@pytest.mark.slow
def test_a_site_answering_403_pauses_the_queue_and_resume_download_ends_it(
        servers: tuple[MediaServer, FakeOllama], data_dir: Path, tmp_path: Path) -> None:
    media, _ = servers
    extra = env(media, YTPIPED_DOWNLOAD__BREAKER_COOLDOWN_S="3600")
    add_one_by_one(data_dir, eight_urls(media), extra)
    media.down = 403  # the whole site refuses the downloader
    daemon = start_daemon(data_dir, tmp_path / "d1.log", extra)
    try:
        wait_for(lambda: events(data_dir, "downloads_paused") == 1, what="the breaker")
        # the pause is recorded as the fifth failure happens; its row is written just after
        wait_for(lambda: sum(1 for _, _, kind in rows(data_dir).values()
                             if kind == "forbidden") == 5, what="the fifth failure's row")
        r = rows(data_dir)
        assert not [v for v, (state, _, _) in r.items() if state == "failed"]
        assert all(attempts == 0 for _, attempts, _ in r.values()), r  # given back
        assert sum(1 for _, _, kind in r.values() if kind == "forbidden") == 5
        st = json.loads(cli(data_dir, "status", "--json", extra_env=extra).stdout)
        dl = st["stages"]["download"]
        assert dl["phase"] == "paused" and dl["breaker"]["state"] == "open"
        assert dl["breaker"]["kind"] == "forbidden"
        assert dl["js_runtime"]["name"] == "deno" and dl["js_runtime"]["ok"] is True
        assert dl["ytdlp_version"]
        alert = next(a for a in st["alerts"] if "circuit breaker" in a)
        assert "forbidden" in alert and "ytpiped doctor" in alert
        metrics = asyncio.run(control.fetch(data_dir, "/metrics"))
        assert metrics is not None and b"ytpiped_download_breaker_open 1.0" in metrics
        table = cli(data_dir, "status", extra_env=extra).stdout
        assert "ALERT: downloads paused by the circuit breaker" in table
        stop(daemon)
        # a restart keeps the pause
        restarted = time.time()
        daemon = start_daemon(data_dir, tmp_path / "d2.log", extra)
        wait_for(lambda: published(data_dir)[1] > restarted
                 and published(data_dir)[0].get("phase") == "paused",
                 what="the restarted daemon to publish its pause")
        assert counts(data_dir)["queued"] == 8
        media.down = None  # the site is fixed
        r2 = cli(data_dir, "resume", "download", extra_env=extra)
        assert r2.returncode == 0 and "resumed" in r2.stdout, r2.stdout
        wait_for(lambda: counts(data_dir).get("done") == 8, timeout=120, what="all done")
        stop(daemon)
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
    assert events(data_dir, "downloads_resumed") == 1
    assert all(state == "done" for state, _, _ in rows(data_dir).values())


@pytest.mark.slow
def test_after_the_cooldown_a_probe_resumes_once_the_site_is_fixed(
        servers: tuple[MediaServer, FakeOllama], data_dir: Path, tmp_path: Path) -> None:
    media, _ = servers
    extra = env(media, YTPIPED_DOWNLOAD__BREAKER_COOLDOWN_S="1")
    add_one_by_one(data_dir, eight_urls(media), extra)
    media.down = 403
    daemon = start_daemon(data_dir, tmp_path / "d.log", extra)
    try:
        wait_for(lambda: events(data_dir, "breaker_probe_failed") >= 1,
                 what="a probe while the site is still down")
        assert counts(data_dir).get("failed", 0) == 0
        media.down = None
        wait_for(lambda: counts(data_dir).get("done") == 8, timeout=120, what="all done")
        stop(daemon)
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
    assert events(data_dir, "downloads_paused") == 1
    assert events(data_dir, "downloads_resumed") == 1
    assert all(attempts == 0 for _, attempts, _ in rows(data_dir).values())


@pytest.mark.slow
def test_a_queue_mixing_failing_and_good_urls_does_not_trip_it(
        servers: tuple[MediaServer, FakeOllama], data_dir: Path, tmp_path: Path) -> None:
    media, _ = servers
    extra = env(media, YTPIPED_DOWNLOAD__MAX_ATTEMPTS="1")
    clips = []
    for i in range(5):  # bad, good, bad, good, …: five failures, never five in a row
        clips.append(f"{CLIPS[i % len(CLIPS)]}?status=403&copy={i}")
        clips.append(f"{CLIPS[i % len(CLIPS)]}?copy={i}")
    add_one_by_one(data_dir, youtube_urls(media, clips), extra)
    daemon = start_daemon(data_dir, tmp_path / "d.log", extra)
    try:
        wait_for(lambda: counts(data_dir).get("done", 0) + counts(data_dir).get("failed", 0)
                 == 10, timeout=120, what="every video done or failed")
        stop(daemon)
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
    c = counts(data_dir)
    assert (c["done"], c["failed"]) == (5, 5)
    assert events(data_dir, "downloads_paused") == 0
    assert {kind for state, _, kind in rows(data_dir).values() if state == "failed"} == {
        "forbidden"}


def test_pause_and_resume_leave_a_request_for_the_daemon(data_dir: Path) -> None:
    held = cli(data_dir, "pause", "download")
    assert held.returncode == 0 and "download: held" in held.stdout
    assert "applies this when it starts" in held.stdout  # no daemon runs
    s = SqliteDB(db_path(data_dir), readonly=True)
    try:
        request = s.get_state("request:download")
    finally:
        s.close()
    assert request is not None and request[0]["action"] == "pause"
    released = cli(data_dir, "resume", "download")  # before any daemon applied the hold
    assert released.returncode == 0 and "resumed (it was held" in released.stdout
    again = cli(data_dir, "resume", "download")
    assert again.returncode == 0 and "was not paused" in again.stdout
    wrong = cli(data_dir, "pause", "transcription")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr
