"""Transcript assembly and files: chunk merge, repetition guard, json/txt/srt/vtt writers.
Pure except the atomic writers.

The repetition guard looks for loops where they happen (per segment, and runs of
near-identical consecutive segments), so that only the looping span is transcribed
again. A compression ratio over a whole chunk rises with its length on ordinary speech
(measured: over 2.6 for most chunks of 6 minutes or more), so a whole-chunk test re-ran
nearly every long chunk."""

from __future__ import annotations

import difflib
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytpiped.files import atomic_write_text

Segment = dict[str, Any]


def merge_chunks(chunks: Sequence[Sequence[Segment]], bounds: Sequence[tuple[float, float]]
                 ) -> list[Segment]:
    """Concatenate chunk transcripts (absolute timestamps) in order; keep every segment's
    times inside its chunk and monotonic, drop empty text."""
    out: list[Segment] = []
    last_end = 0.0
    for segs, (lo, hi) in zip(chunks, bounds, strict=True):
        for s in segs:
            text = str(s.get("text", "")).strip()
            if not text:
                continue
            start = min(max(float(s["start"]), lo, last_end), hi)
            end = min(max(float(s["end"]), start), hi)
            out.append({**s, "start": round(start, 3), "end": round(end, 3), "text": text})
            last_end = end
    return out


COMPRESSION_LIMIT = 2.4  # Whisper's own threshold, meant for about one 30-s window
MIN_LOOP_CHARS = 60  # below this a segment's compression ratio says nothing
SPAN_MARGIN_S = 1.0


@dataclass(frozen=True)
class Loop:
    """A run of segments that looks like a Whisper repetition loop."""

    first: int  # index of its first segment
    last: int  # index of its last segment (inclusive)
    start_s: float
    end_s: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start_s, "end": self.end_s, "reason": self.reason}


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def compression_ratio(text: str) -> float:
    """Whisper's compression ratio of `text` (bytes ÷ zlib-compressed bytes)."""
    data = text.encode()
    return len(data) / max(1, len(zlib.compress(data)))


def _similar(a: str, b: str) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.9


def _own_problem(text: str) -> str | None:
    """A reason when one segment's own text repeats itself."""
    norm = _norm(text)
    if len(norm) >= MIN_LOOP_CHARS and (r := compression_ratio(norm)) > COMPRESSION_LIMIT:
        return f"compression ratio {r:.2f} > {COMPRESSION_LIMIT} in one segment"
    words = norm.split()
    if len(words) >= 12:
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        top = max(grams.count(g) for g in set(grams))
        if top * 3 > len(words) * 0.5:
            return f"one 3-word phrase covers {top * 3 / len(words):.0%} of a segment"
    return None


def find_loops(segments: Sequence[Segment], *, min_run: int = 4, min_run_long: int = 3,
               long_words: int = 6) -> list[Loop]:
    """Where the transcript loops: a segment whose own text repeats itself (compression
    ratio over Whisper's 2.4, or one phrase over half its words), or a run of identical
    or near-identical consecutive segments (`min_run`, or `min_run_long` of segments of
    `long_words` words or more). Measured per segment, so ordinary speech never adds up
    to a loop however long the chunk is. Overlapping findings merge into one span."""
    texts = [_norm(str(s.get("text", ""))) for s in segments]
    flagged: dict[int, str] = {}
    for i, s in enumerate(segments):
        why = _own_problem(str(s.get("text", "")))
        if why:
            flagged[i] = why
    i = 0
    while i < len(texts):
        j = i
        while j + 1 < len(texts) and _similar(texts[i], texts[j + 1]):
            j += 1
        run = j - i + 1
        need = min_run_long if len(texts[i].split()) >= long_words else min_run
        if texts[i] and run >= need:
            for k in range(i, j + 1):
                flagged.setdefault(k, f"{run} near-identical segments in a row: "
                                      f"{texts[i][:50]!r}")
        i = j + 1
    loops: list[Loop] = []
    for k in sorted(flagged):
        seg = segments[k]
        if loops and k <= loops[-1].last + 1:
            prev = loops[-1]
            loops[-1] = Loop(prev.first, k, prev.start_s, float(seg["end"]), prev.reason)
        else:
            loops.append(Loop(k, k, float(seg["start"]), float(seg["end"]), flagged[k]))
    return loops


def rerun_span(loop: Loop, bounds: tuple[float, float]) -> tuple[float, float]:
    """The audio to transcribe again for `loop`: its segments, a margin either side."""
    lo, hi = bounds
    return (round(max(lo, loop.start_s - SPAN_MARGIN_S), 3),
            round(min(hi, max(loop.end_s, loop.start_s) + SPAN_MARGIN_S), 3))


def splice(segments: Sequence[Segment], span: tuple[float, float],
           replacement: Sequence[Segment]) -> list[Segment]:
    """`segments` with those inside `span` replaced by `replacement` (kept in order)."""
    lo, hi = span
    keep = [s for s in segments
            if float(s["end"]) <= lo + 1e-6 or float(s["start"]) >= hi - 1e-6]
    inside = [s for s in replacement if lo - 1e-6 <= float(s["start"]) < hi]
    return sorted([*keep, *inside], key=lambda s: (float(s["start"]), float(s["end"])))


def repetition_problem(segments: Sequence[Segment]) -> str | None:
    """The first loop's reason, or None (a summary for logs and tests)."""
    loops = find_loops(segments)
    return loops[0].reason if loops else None


#: options for the re-run of a looping span: Whisper's temperature fallback, no conditioning
RETRY_OPTIONS: dict[str, Any] = {"condition_on_previous_text": False,
                                 "temperature": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]}


def _ts(seconds: float, sep: str) -> str:
    ms = round(max(0.0, seconds) * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_txt(segments: Iterable[Segment]) -> str:
    return "\n".join(s["text"] for s in segments) + "\n"


def to_srt(segments: Iterable[Segment]) -> str:
    blocks = [f"{i}\n{_ts(s['start'], ',')} --> {_ts(s['end'], ',')}\n{s['text']}\n"
              for i, s in enumerate(segments, 1)]
    return "\n".join(blocks)


def to_vtt(segments: Iterable[Segment]) -> str:
    blocks = [f"{_ts(s['start'], '.')} --> {_ts(s['end'], '.')}\n{s['text']}\n"
              for s in segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


#: the extra formats `transcribe.output_formats` may name; the JSON is always written
RENDERERS = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt}


def write_outputs(out_dir: Path, stem: str, doc: Mapping[str, Any],
                  formats: Sequence[str]) -> dict[str, str]:
    """Write the JSON transcript and every extra format in `formats`, each atomically.

    The JSON is the pipeline's own record (mining, export and `transcribe` one-shot read
    it), so it is written whatever `formats` says ("json" in it is allowed and changes
    nothing); it is written last, so its presence means the set is complete.
    """
    extras = list(dict.fromkeys(f for f in formats if f != "json"))
    unknown = [f for f in extras if f not in RENDERERS]
    if unknown:
        raise ValueError(f"unknown transcript format {unknown[0]!r} (key "
                         f"'transcribe.output_formats' takes {', '.join(RENDERERS)}; the JSON "
                         "is always written)")
    segs = doc["segments"]
    paths: dict[str, str] = {}
    for fmt in extras:
        path = out_dir / f"{stem}.{fmt}"
        atomic_write_text(path, RENDERERS[fmt](segs))
        paths[fmt] = str(path)
    path = out_dir / f"{stem}.json"
    atomic_write_text(path, json.dumps(doc, ensure_ascii=False, indent=1))
    paths["json"] = str(path)
    return paths
