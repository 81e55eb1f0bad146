"""The one-shot `ytpiped transcribe` without models: flags -> settings, output names,
progress on a terminal and in a pipe, and analysis overlapping model loading and
transcription (fake slots and a fake analyser, ordered by events, no timing)."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ytpiped import config
from ytpiped.audio.analysis import Analysis
from ytpiped.engines.base import ChunkJob, ChunkResult
from ytpiped.errors import UsageError
from ytpiped.oneshot import Progress, configure, output_names, transcribe_directory

GATE_S = 30.0  # a gate that never opens fails the test instead of hanging it


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    return config.load(flags={"data_dir": str(tmp_path / "data")})


def test_workers_go_to_the_cpu_on_a_machine_without_gpu(settings: config.Settings) -> None:
    t = configure(settings, workers=1, gpus=0).transcribe
    assert (t.cpu_slots, t.gpu_slots) == (1, settings.transcribe.gpu_slots)
    t = configure(settings, workers=2, gpus=1).transcribe  # auto with a GPU: the GPU
    assert (t.gpu_slots, t.cpu_slots) == (2, settings.transcribe.cpu_slots)
    t = configure(settings, device="cpu", workers=3, gpus=1).transcribe
    assert (t.gpu_slots, t.cpu_slots) == (0, 3)
    t = configure(settings, device="cuda", workers=1, gpus=1).transcribe
    assert (t.gpu_slots, t.cpu_slots) == (1, 0)


def test_flags_model_language_formats(settings: config.Settings) -> None:
    t = configure(settings, model="/m/tiny", language="de", formats=["srt", "txt"]).transcribe
    assert (t.model_gpu, t.model_cpu, t.language) == ("/m/tiny", "/m/tiny", "de")
    assert list(t.output_formats) == ["srt", "txt"]
    with pytest.raises(UsageError, match=r"--formats txt,docx: unknown format 'docx'"):
        configure(settings, formats=["txt", "docx"])
    with pytest.raises(UsageError, match="--workers 0"):
        configure(settings, workers=0)


def test_cuda_without_a_gpu_names_the_flag(settings: config.Settings) -> None:
    with pytest.raises(UsageError, match=r"--device cuda: no NVIDIA GPU.*--device cpu"):
        configure(settings, device="cuda", gpus=0)


def test_inputs_that_share_a_name_keep_their_extension(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("talk.mp3", "talk.m4a", "other.wav", "sub/talk.mp3")]
    assert output_names(files, tmp_path) == {
        files[0]: "talk.mp3", files[1]: "talk.m4a", files[2]: "other",
        files[3]: "sub/talk"}


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_pipe_is_one_plain_line_per_file() -> None:
    out = Pipe()
    p = Progress(out)
    p.expect(2)
    for name in ("a.mp3", "b.mp3"):
        p.analysed(60.0)
        p.chunk(30.0)
        p.chunk(30.0)
        p.file_done(name)
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2
    assert lines[0].startswith("1/2 files: a.mp3; 1.0/1.0 min of audio")
    assert lines[1].startswith("2/2 files: b.mp3; 2.0/2.0 min of audio") and "ETA" in lines[1]


def test_progress_on_a_terminal_is_a_bar_moved_per_chunk() -> None:
    out = Terminal()
    p = Progress(out)
    p.expect(1)
    p.analysed(90.0)
    p.chunk(30.0)
    assert (p.bar.n, p.bar.total) == (30.0, 90.0)
    p.chunk(30.0)
    assert p.bar.n == 60.0
    p.chunk(30.0)
    p.file_done("a.mp3")
    p.close()
    assert "\r" in out.getvalue() and "s of audio" in out.getvalue()


class GatedEngine:
    """A fake slot: records when its model starts loading and each chunk it is given."""

    def __init__(self, events: list[str], loading: threading.Event,
                 dispatched: threading.Event) -> None:
        self.device_kind, self.device_name, self.model = "cpu", "cpu", "fake"
        self.events, self.loading, self.dispatched = events, loading, dispatched

    async def start(self) -> None:
        self.events.append("load")
        self.loading.set()

    async def close(self) -> None: ...

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        self.events.append(f"chunk:{job.video_id}")
        self.dispatched.set()
        return ChunkResult([{"start": job.start_s, "end": job.end_s, "text": "words"}],
                           "en", 0.01, "cpu", "fake")


def test_analysis_overlaps_model_loading_and_transcription(settings: config.Settings,
                                                           tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (src / name).write_bytes(b"read by the fake analyser only")
    events: list[str] = []
    loading, dispatched = threading.Event(), threading.Event()

    def analyse(path: Path, max_chunk_s: float) -> Analysis:
        if path.name == "a.wav":  # the models load while the first file is analysed
            loading.wait(GATE_S)
        if path.name == "c.wav":  # the first file is transcribed while the last is analysed
            dispatched.wait(GATE_S)
        events.append(f"analysed:{path.stem}")
        return Analysis(duration_s=10.0, sample_rate=16000, integrated_lufs=-20.0,
                        loudness_range_lu=5.0, speech_ratio=1.0, silences=[],
                        chunks=[(0.0, 10.0)])

    results = transcribe_directory(src, tmp_path / "out", settings,
                                   engines=[GatedEngine(events, loading, dispatched)],
                                   analyzer=analyse)
    assert [r.status for r in results] == ["done"] * 3
    assert events.index("load") < events.index("analysed:a")
    # a file analysed before is transcribed while the last is analysed (which of a and b
    # goes first is the dispatcher's choice)
    first_chunk = min(i for i, e in enumerate(events) if e.startswith("chunk:"))
    assert events[first_chunk] in ("chunk:a", "chunk:b")
    assert first_chunk < events.index("analysed:c")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"{n}.{ext}" for n in "abc" for ext in ("json", "srt", "txt", "vtt")]


def test_slots_started_by_the_caller_are_closed_when_every_file_is_done_already(
        settings: config.Settings, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "a.wav").write_bytes(b"never read")
    (out / "a.json").write_text("{}")
    closed: list[str] = []

    class Started(GatedEngine):
        async def close(self) -> None:
            closed.append("closed")

    engine = Started([], threading.Event(), threading.Event())
    results = transcribe_directory(src, out, settings, engines=[engine])
    assert [r.status for r in results] == ["skipped"] and closed == ["closed"]


def test_the_python_api_does_not_import_the_test_doubles() -> None:
    code = ("import sys, ytpiped.oneshot, ytpiped.pipeline, ytpiped.stages.transcribe; "
            "print([m for m in sys.modules if m.startswith('ytpiped.testing')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
