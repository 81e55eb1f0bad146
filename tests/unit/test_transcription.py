from __future__ import annotations

import json
from pathlib import Path

import pytest

from ytpiped import transcription as tx
from ytpiped.engines.base import EngineCrashed, EngineOOM, classify_error
from ytpiped.stages.transcribe import fixed_chunks


def seg(start: float, end: float, text: str) -> dict[str, object]:
    return {"start": start, "end": end, "text": text}


def test_merge_keeps_order_bounds_and_drops_empty() -> None:
    a = [seg(0.0, 4.0, " one "), seg(3.5, 9.9, "two"), seg(9.0, 9.5, " ")]
    b = [seg(9.8, 12.0, "three"), seg(25.0, 31.0, "four")]
    merged = tx.merge_chunks([a, b], [(0.0, 10.0), (10.0, 30.0)])
    assert [s["text"] for s in merged] == ["one", "two", "three", "four"]
    starts = [s["start"] for s in merged]
    assert starts == sorted(starts)
    assert merged[2]["start"] == 10.0  # clamped into its own chunk
    assert merged[3]["end"] == 30.0
    assert all(s["end"] >= s["start"] for s in merged)


def test_repetition_guard() -> None:
    looping = [seg(i, i + 1, "Thank you for watching.") for i in range(6)]
    assert "repeated" in (tx.repetition_problem(looping) or "")
    phrase = [seg(0, 30, "and the the the " * 40)]
    assert tx.repetition_problem(phrase) is not None
    normal = [seg(0, 5, "Solar panels convert sunlight into electricity."),
              seg(5, 9, "The price of solar power fell by ninety percent in ten years."),
              seg(9, 12, "Cheap energy will change how cities are built.")]
    assert tx.repetition_problem(normal) is None


def test_srt_and_vtt_timestamps() -> None:
    segs = [seg(0.0, 1.5, "hello"), seg(3661.25, 3662.0, "later")]
    srt = tx.to_srt(segs)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nhello\n")
    assert "2\n01:01:01,250 --> 01:01:02,000\nlater" in srt
    vtt = tx.to_vtt(segs)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello")
    assert tx.to_txt(segs) == "hello\nlater\n"


def test_write_outputs_is_atomic_and_complete(tmp_path: Path) -> None:
    doc = {"video_id": "v", "segments": [seg(0.0, 1.0, "hi")]}
    paths = tx.write_outputs(tmp_path, "v", doc, ["json", "txt", "srt", "vtt"])
    assert set(paths) == {"json", "txt", "srt", "vtt"}
    assert json.loads((tmp_path / "v.json").read_text())["segments"][0]["text"] == "hi"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.srt", "v.txt", "v.vtt"]


@pytest.mark.parametrize("formats", [["txt"], [], ["srt", "json", "txt"]])
def test_the_json_transcript_is_always_written(tmp_path: Path, formats: list[str]) -> None:
    # the JSON is the pipeline's own record (mining reads it); output_formats adds to it
    doc = {"video_id": "v", "segments": [seg(0.0, 1.0, "hi")]}
    paths = tx.write_outputs(tmp_path, "v", doc, formats)
    assert set(paths) == {"json", *formats}
    assert json.loads((tmp_path / "v.json").read_text()) == doc
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"v.{f}" for f in paths)


def test_unknown_output_format_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    doc = {"video_id": "v", "segments": [seg(0.0, 1.0, "hi")]}
    with pytest.raises(ValueError, match=r"'docx'.*transcribe\.output_formats"):
        tx.write_outputs(tmp_path, "v", doc, ["txt", "docx"])
    assert list(tmp_path.iterdir()) == []


def test_fixed_chunks_cover_evenly() -> None:
    assert fixed_chunks(100.0, 900.0) == [(0.0, 100.0)]
    chunks = fixed_chunks(2000.0, 900.0)
    assert len(chunks) == 3 and chunks[0][0] == 0.0 and chunks[-1][1] == 2000.0
    assert all(e - s <= 900.0 for s, e in chunks)


@pytest.mark.parametrize("text,cls", [
    ("RuntimeError: CUDA failed with error out of memory", EngineOOM),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate", EngineOOM),
    ("ValueError: something else", EngineCrashed),
])
def test_oom_is_recognised_by_its_real_text(text: str, cls: type) -> None:
    assert classify_error(text) is cls
