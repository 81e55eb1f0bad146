"""The demo scenario, smaller: real daemon, real yt-dlp against the local media server,
real Whisper tiny.en, FakeOllama; checked on the finished data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ytpiped.store import SqliteDB, db_path
from ytpiped.urls import generic_id


@pytest.mark.slow
def test_demo_scenario_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "ytpiped.demo", "--workdir", str(work), "--small",
                        "--timeout", "240"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "daemon stopped with SIGTERM, exit code 0" in r.stdout
    data = work / "data"
    urls = [u for u in (work / "urls.txt").read_text().splitlines() if u and u[0] != "#"]
    ids = {u.split("/media/")[1].split("?")[0]: generic_id(u) for u in urls}
    s = SqliteDB(db_path(data), readonly=True)
    rows = {name: s.get(vid) for name, vid in ids.items()}
    states = {name: (row.state, row.error_kind) for name, row in rows.items() if row}
    assert states == {"long.opus": ("done", None), "solar.webm": ("done", None),
                      "coffee.m4a": ("done", None), "broken.m4a": ("failed", "bad_audio"),
                      "missing.webm": ("failed", "unavailable")}
    # the 429s cooled the stage down twice without spending an attempt
    assert s.event_counts_by_kind("cooldown") == {"rate_limited": 2}
    s.close()
    for name, word in (("long.opus", "coffee"), ("solar.webm", "solar"), ("coffee.m4a", "sleep")):
        vid = ids[name]
        for ext in ("json", "txt", "srt", "vtt"):
            assert (data / "transcripts" / f"{vid}.{ext}").exists()
        assert word in (data / "transcripts" / f"{vid}.txt").read_text().lower()
        mined = json.loads((data / "mining" / f"{vid}.json").read_text())
        assert mined["claims"] and mined["evaluation"]
        assert not list((data / "audio").glob(f"{vid}.*"))  # audio deleted after transcript
    _finding_things_on_demo_data(data, ids)
    claims = (work / "export" / "claims.jsonl").read_text().splitlines()
    assert claims and all(json.loads(c)["text"] for c in claims)
    assert "exported" in r.stdout and "FakeOllama" in r.stdout
    assert "(the demo took " in r.stdout  # README states how long it takes
    # it ends with `ytpiped doctor` on the demo's config, which passes
    doctor = r.stdout.split("$ ytpiped doctor", 1)[1]
    assert "ok    JavaScript runtime" in doctor and " 0 failed" in doctor
    assert not list(data.rglob("*.tmp")) and not list(data.rglob("*.part"))
    # one permission policy (daemon.umask 0o027) for everything under the data dir, the
    # data dir itself included (the demo created it 0755 before the daemon started)
    for path in [data, *data.rglob("*")]:
        mode = path.lstat().st_mode & 0o777
        private = ".private" in path.parts or path.name.endswith(".sock")
        forbidden = 0o077 if private else 0o027
        assert mode & forbidden == 0, f"{path}: {oct(mode)}"
        if path.is_file() and not private:
            assert mode & 0o040, f"{path}: group cannot read ({oct(mode)})"


def _ytpiped(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ytpiped", "--data-dir", str(data), *args],
                          capture_output=True, text=True, timeout=60)


def _finding_things_on_demo_data(data: Path, ids: dict[str, str]) -> None:
    """`search`, `ls`, `show` and `logs` on what the daemon indexed as it went."""
    r = _ytpiped(data, "search", "--json", "coffee", "sleep")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["hits"]
    assert {h["video_id"] for h in hits} >= {ids["coffee.m4a"], ids["long.opus"]}
    assert {h["kind"] for h in hits} == {"claim", "transcript"}
    assert all(h["link"].startswith("http://127.0.0.1:") and h["time"] for h in hits)
    r = _ytpiped(data, "search", '"coffee')
    assert r.returncode == 2 and "is not closed" in r.stderr
    r = _ytpiped(data, "ls", "--json")
    listed = {v["id"]: v for v in json.loads(r.stdout)}
    assert set(listed) == set(ids.values())
    assert listed[ids["broken.m4a"]]["error_kind"] == "bad_audio"
    r = _ytpiped(data, "ls", "--failed")
    assert r.returncode == 0 and "failed:unavailable" in r.stdout and " done " not in r.stdout
    r = _ytpiped(data, "show", "--json", ids["coffee.m4a"])
    shown = json.loads(r.stdout)
    assert shown["video"]["state"] == "done" and shown["claims"]["total"] > 0
    assert {"transcript.json", "mining"} <= set(shown["files"])
    assert [e["stage"] for e in shown["history"] if e["event"] == "completed"] == \
        ["download", "analyze", "transcribe", "mine", "evaluate"]
    r = _ytpiped(data, "logs", "--json", "--kind", "rate_limited")
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert [e["event"] for e in events] == ["cooldown", "cooldown"]
