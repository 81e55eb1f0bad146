"""Transcript assembly and files: chunk merge, repetition guard, json/txt/srt/vtt writers.
Pure except the atomic writers."""

from __future__ import annotations

import itertools
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
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


def repetition_problem(segments: Sequence[Segment], *, max_repeats: int = 4,
                       max_compression: float = 2.6) -> str | None:
    """A reason when the text looks like a Whisper repetition loop, else None."""
    texts = [str(s.get("text", "")).strip().lower() for s in segments]
    run = 1
    for a, b in itertools.pairwise(texts):
        run = run + 1 if a and a == b else 1
        if run >= max_repeats:
            return f"segment repeated {run} times: {a[:60]!r}"
    words = re.findall(r"\w+", " ".join(texts))
    if len(words) >= 30:
        data = " ".join(words).encode()
        ratio = len(data) / max(1, len(zlib.compress(data)))
        if ratio > max_compression:
            return f"compression ratio {ratio:.2f} > {max_compression} (repetitive text)"
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        top = max((grams.count(g) for g in set(grams)), default=0)
        if top * 3 > len(words) * 0.5:
            return f"one 3-word phrase covers {top * 3 / len(words):.0%} of the text"
    return None


#: options for the one re-run of a looping chunk
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
