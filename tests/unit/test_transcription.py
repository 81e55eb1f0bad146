from __future__ import annotations

import json
import re
import zlib
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


def ordinary_speech(minutes: float) -> list[dict[str, object]]:
    """Long, ordinary, non-repetitive English as Whisper segments (<= 30 words, ~150 words
    a minute): the prose sentences of Python's own documentation."""
    from pydoc_data.topics import topics

    text = re.sub(r"\s+", " ", " ".join(topics[k] for k in sorted(topics)))
    prose = [x for x in re.split(r"(?<=[.!?]) ", text)
             if re.fullmatch(r"[A-Za-z ,;'.!?-]+", x) and len(x.split()) >= 5]
    segs, t = [], 0.0
    for sentence in prose:
        words = sentence.split()
        for k in range(0, len(words), 30):
            d = len(words[k:k + 30]) / 2.5
            segs.append(seg(round(t, 2), round(t + d, 2), " ".join(words[k:k + 30])))
            t += d
        if t >= minutes * 60:
            return segs
    raise AssertionError("not enough prose")


@pytest.mark.parametrize("minutes", [1, 3, 6, 15])
def test_long_ordinary_speech_is_not_a_loop(minutes: float) -> None:
    segs = ordinary_speech(minutes)
    assert tx.find_loops(segs) == []
    # what the old whole-chunk test measured: it rises with length and flagged these
    words = " ".join(re.findall(r"\w+", " ".join(str(x["text"]) for x in segs).lower()))
    ratio = len(words.encode()) / len(zlib.compress(words.encode()))
    assert minutes < 6 or ratio > 2.6


def test_a_real_loop_is_found_with_its_span() -> None:
    speech = ordinary_speech(3)
    loop = [seg(100.0 + i, 101.0 + i, "Thank you for watching.") for i in range(6)]
    segs = [x for x in speech if float(x["end"]) <= 100.0] + loop + \
        [x for x in speech if float(x["start"]) >= 106.0]
    (found,) = tx.find_loops(segs)
    assert (found.start_s, found.end_s) == (100.0, 106.0)
    assert "6 near-identical segments" in found.reason
    assert tx.rerun_span(found, (0.0, 900.0)) == (99.0, 107.0)


def test_near_identical_long_segments_and_phrase_loops() -> None:
    long_ = "we are going to talk about the weather in the mountains today"
    variants = [long_, long_ + " again", long_.replace("today", "to day")]
    segs = [seg(i * 4.0, i * 4.0 + 4, t) for i, t in enumerate(variants)]
    assert tx.find_loops(segs)  # three near-identical segments of 6+ words
    phrase = [seg(0, 30, "and the the the " * 40)]
    assert "compression ratio" in (tx.repetition_problem(phrase) or "")
    short_real = [seg(i, i + 1, "Yeah.") for i in range(3)]  # people do say this
    assert tx.find_loops(short_real) == []


def test_splice_replaces_only_the_span() -> None:
    segs = [seg(0, 5, "a"), seg(5, 6, "loop"), seg(6, 7, "loop"), seg(8, 9, "b")]
    fixed = tx.splice(segs, (5.0, 7.5), [seg(5.1, 7.2, "real words"), seg(7.6, 9, "out")])
    assert [x["text"] for x in fixed] == ["a", "real words", "b"]


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
