"""kill -9 the real daemon (real yt-dlp, Whisper, FakeOllama) at seeded moments across all
stages and restart it each time: every video ends done or failed exactly once, with no
duplicate completions and no orphaned temporary files."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from tests.e2e.helpers import cli, counts, wait_for
from ytpiped.demo import write_config
from ytpiped.states import IN_PROGRESS
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer


def events(data: Path) -> int:
    path = db_path(data)
    if not path.exists():
        return 0
    s = SqliteDB(path, readonly=True)
    try:
        return int(s.conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        s.close()


@pytest.mark.slow
def test_kill_9_across_real_stages(servers: tuple[MediaServer, FakeOllama],
                                   tmp_path: Path) -> None:
    import subprocess
    import sys

    media, llm = servers
    data, config = tmp_path / "data", tmp_path / "ytpiped.toml"
    data.mkdir()
    write_config(config, data, llm.url)
    names = ["long.opus", "solar.webm", "coffee.m4a", "ocean.mp3", "broken.m4a"]
    urls = [media.media_url(n) for n in names]
    env_args = ["--config", str(config)]
    assert subprocess.run([sys.executable, "-m", "ytpiped", *env_args, "add", *urls],
                          capture_output=True, timeout=60).returncode == 0
    rng = random.Random(11)
    killed_in: list[set[str]] = []
    log = (tmp_path / "daemon.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "ytpiped", *env_args, "run"],
                                stdout=log, stderr=subprocess.STDOUT)

    def terminal() -> bool:
        c = counts(data)
        return bool(c) and c["done"] + c["failed"] == len(names)

    for _ in range(10):
        if terminal():
            break
        before = events(data)
        target = before + rng.randint(1, 3)
        daemon = start()
        try:
            wait_for(lambda t=target: events(data) >= t or terminal(), timeout=120,
                     what="progress before the kill")
            c = counts(data)
            killed_in.append({s.value for s in IN_PROGRESS if c.get(s.value)})
        finally:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=30)
    final = start()
    try:
        wait_for(terminal, timeout=240, what="every video done or failed")
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(timeout=60)
        log.close()
    assert len(killed_in) >= 8
    stages_hit = set().union(*killed_in)
    assert len(stages_hit) >= 3, stages_hit  # kills landed in several stages
    s = SqliteDB(db_path(data), readonly=True)
    c = s.counts()
    assert c["done"] == 4 and c["failed"] == 1 and sum(c.values()) == 5
    for stage in ("download", "analyze", "transcribe", "mine", "evaluate"):
        total, distinct = s.conn.execute(
            "SELECT count(*), count(DISTINCT video_id) FROM events WHERE stage = ? AND "
            "event = 'completed'", (stage,)).fetchone()
        assert total == distinct, f"{stage} completed a video twice"
    s.close()
    for name in ("transcripts", "mining"):
        assert not list((data / name).glob(".*.tmp")) and not list((data / name).glob("*.tmp"))
    assert not list((data / "audio").glob("*.part"))
    transcripts = sorted(p.stem for p in (data / "transcripts").glob("*.json"))
    assert len(transcripts) == 4 == len(set(transcripts))
    assert cli(data, "status", "--json").returncode == 0
