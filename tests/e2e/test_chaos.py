"""Faults as they happen in life, on the real daemon (real yt-dlp, Whisper, FakeOllama):
a process suspended for longer than its leases (SIGSTOP/SIGCONT: a laptop lid, a paused
VM) while it transcribes and while it mines, and kill -9 in the middle of a long
transcription."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.e2e.helpers import counts, wait_for
from ytpiped.audio.decode import RATE, blocks
from ytpiped.demo import write_config
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MEDIA_DIR, MediaServer

LEASE_S = 2.0
SUSPEND_S = LEASE_S * 3  # the fault's length, not a wait for something
STAGES = ("download", "analyze", "transcribe", "mine", "evaluate")


def daemon_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    env.update({"YTPIPED_DAEMON__LEASE_S": str(LEASE_S),
                "YTPIPED_DAEMON__REAP_INTERVAL_S": "0.3", **extra})
    return env


def add(config: Path, urls: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "ytpiped", "--config", str(config), "add", *urls],
                       capture_output=True, text=True, timeout=60, env=daemon_env())
    assert r.returncode == 0, r.stderr


def start(config: Path, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "ytpiped", "--config", str(config),
                                 "run"], stdout=out, stderr=subprocess.STDOUT,
                                env=daemon_env(**extra))


@pytest.mark.slow
def test_suspend_past_the_lease_while_transcribing_and_mining(
        servers: tuple[MediaServer, FakeOllama], tmp_path: Path) -> None:
    media, llm = servers
    llm.latency_s = 0.4  # mining lasts long enough to be suspended in
    data, config, log = tmp_path / "data", tmp_path / "ytpiped.toml", tmp_path / "daemon.log"
    data.mkdir()
    write_config(config, data, llm.url)
    names = ["long.opus", "solar.webm", "coffee.m4a", "ocean.mp3", "memory.wav"]
    add(config, [media.media_url(n) for n in names])

    def terminal() -> bool:
        c = counts(data)
        return bool(c) and c["done"] + c["failed"] == len(names)

    daemon = start(config, log)
    suspended = {"transcribing": 0, "mining": 0}
    try:
        while not terminal() and min(suspended.values()) < 3:
            c = counts(data)
            state = next((s for s in suspended if c.get(s) and suspended[s] < 3), None)
            if state is None:
                time.sleep(0.05)  # poll the database for the next chance
                continue
            daemon.send_signal(signal.SIGSTOP)
            time.sleep(SUSPEND_S)
            daemon.send_signal(signal.SIGCONT)
            suspended[state] += 1
            wait_for(lambda s=state: counts(data).get(s, 0) == 0 or terminal(), timeout=120,
                     what=f"{state} to move on")
        wait_for(terminal, timeout=300, what="every video done or failed")
    finally:
        daemon.send_signal(signal.SIGCONT)
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=60)
    text = log.read_text(errors="replace")
    assert rc == 0, text[-3000:]
    assert suspended["transcribing"] >= 1 and suspended["mining"] >= 1, suspended
    s = SqliteDB(db_path(data), readonly=True)
    assert s.counts()["done"] == len(names)
    for stage in STAGES:
        per_video = dict(s.conn.execute(
            "SELECT video_id, count(*) FROM events WHERE stage = ? AND event = 'completed' "
            "GROUP BY video_id", (stage,)).fetchall())
        assert sorted(per_video.values()) == [1] * len(names), (stage, per_video)
    s.close()
    for bad in ("Traceback", "Task exception was never retrieved", "InvalidTransition",
                "leases_reaped", "lease_lost", "stale_result_dropped"):
        assert bad not in text, bad


def long_audio(folder: Path, seconds: float) -> str:
    """A WAV of long.opus repeated to `seconds`: one Whisper job long enough to be killed in."""
    one = np.concatenate(list(blocks(str(MEDIA_DIR / "long.opus"))))
    audio = np.tile(one, int(seconds * RATE // one.size) + 1)[: int(seconds * RATE)]
    name = "marathon.wav"
    with wave.open(str(folder / name), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return name


def whisper_children(pid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if "multiprocessing" in " ".join(p.cmdline()) and "resource_tracker" not in \
                    " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.slow
def test_kill_9_mid_transcription_leaves_no_whisper_worker(tmp_path: Path,
                                                           servers: tuple[MediaServer,
                                                                          FakeOllama]) -> None:
    _, llm = servers
    folder = tmp_path / "media"
    folder.mkdir()
    name = long_audio(folder, 600.0)
    shutil.copy(MEDIA_DIR / "solar.webm", folder / "solar.webm")
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    server = MediaServer(media_dir=folder)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    data, config, log = tmp_path / "data", tmp_path / "ytpiped.toml", tmp_path / "daemon.log"
    data.mkdir()
    write_config(config, data, llm.url)
    add(config, [server.media_url(name)])
    # one chunk of 600 s: the worker is busy far longer than the 5 s the test allows
    daemon = start(config, log, YTPIPED_TRANSCRIBE__MAX_CHUNK_S="900")
    try:
        wait_for(lambda: counts(data).get("transcribing", 0) == 1, timeout=120,
                 what="transcription to start")
        wait_for(lambda: len(whisper_children(daemon.pid)) >= 1, timeout=60,
                 what="whisper workers")
        workers = whisper_children(daemon.pid)
        # the job is on its way: let the workers do a second of real work on it first
        base = sum(w.cpu_times().user for w in workers)
        wait_for(lambda: sum(w.cpu_times().user for w in workers) > base + 1.0, timeout=60,
                 what="workers busy")
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
    gone, alive = psutil.wait_procs(workers, timeout=5)
    for p in alive:
        p.kill()
    assert alive == [], f"{len(alive)} whisper workers outlived the daemon"
    assert len(gone) == len(workers)
