"""One file's analysis: decode once (streaming), loudness, silences, speech ratio and the
chunk plan. Blocking: call it in a thread or process, never on the event loop."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytpiped.abort import check
from ytpiped.audio import chunkplan
from ytpiped.audio.decode import RATE, BadAudio, blocks
from ytpiped.audio.loudness import Loudness, LoudnessMeter
from ytpiped.config import Settings

#: below this share of non-silent time a file has no usable audio
MIN_SPEECH_RATIO = 0.02


class NoAudio(Exception):
    """Decodable, but silent or nearly so."""


@dataclass(frozen=True)
class Analysis:
    duration_s: float
    sample_rate: int
    integrated_lufs: float | None  # None when everything is gated out (silence)
    loudness_range_lu: float
    speech_ratio: float
    silences: list[tuple[float, float]]
    chunks: list[tuple[float, float]]
    backend: str = "cpu"

    def to_json(self) -> dict[str, Any]:
        return {"duration_s": round(self.duration_s, 3), "sample_rate": self.sample_rate,
                "integrated_lufs": None if self.integrated_lufs is None
                else round(self.integrated_lufs, 2),
                "loudness_range_lu": round(self.loudness_range_lu, 2),
                "speech_ratio": round(self.speech_ratio, 4),
                "silences": [list(s) for s in self.silences],
                "chunks": [list(c) for c in self.chunks]}


def analyze_path(path: str | Path, *, max_chunk_s: float, threshold_lu: float = -20.0,
                 min_silence_s: float = 0.6, abort: threading.Event | None = None) -> Analysis:
    """Raises BadAudio (not decodable), NoAudio (silent) or Aborted (`abort` was set)."""
    meter = LoudnessMeter(RATE)
    for block in blocks(path):
        check(abort)
        meter.feed(block)
    return finish(meter.result(), path, max_chunk_s=max_chunk_s, threshold_lu=threshold_lu,
                  min_silence_s=min_silence_s)


def finish(r: Loudness, path: str | Path, *, max_chunk_s: float, threshold_lu: float = -20.0,
           min_silence_s: float = 0.6, backend: str = "cpu") -> Analysis:
    """Silences, speech ratio and chunk plan from a loudness measurement (any backend)."""
    integrated = r.integrated_lufs if math.isfinite(r.integrated_lufs) else None
    sil = chunkplan.silences(r.segment_lufs, r.integrated_lufs, r.duration_s, threshold_lu,
                             min_silence_s)
    ratio = chunkplan.speech_ratio(sil, r.duration_s)
    if integrated is None or ratio < MIN_SPEECH_RATIO:
        level = "below -70 LUFS" if integrated is None else f"{integrated:.1f} LUFS"
        raise NoAudio(f"{path}: no usable audio ({r.duration_s:.1f} s, loudness {level}, "
                      f"{ratio:.1%} non-silent)")
    return Analysis(duration_s=r.duration_s, sample_rate=RATE, integrated_lufs=integrated,
                    loudness_range_lu=r.loudness_range_lu, speech_ratio=ratio, silences=sil,
                    chunks=chunkplan.plan_chunks(r.duration_s, sil, max_chunk_s),
                    backend=backend)


def analyze_file(path: str | Path, settings: Settings) -> dict[str, Any]:
    """`ytpiped analyze FILE --json`: the analysis as a JSON-able dict."""
    a = settings.analyze
    return analyze_path(path, max_chunk_s=settings.transcribe.max_chunk_s,
                        threshold_lu=a.silence_threshold_lu,
                        min_silence_s=a.min_silence_s).to_json()


def format_analysis(d: dict[str, Any]) -> str:
    sil = d["silences"]
    lines = [f"duration       {d['duration_s']:.2f} s at {d['sample_rate']} Hz",
             f"loudness       {d['integrated_lufs']} LUFS integrated, range "
             f"{d['loudness_range_lu']} LU",
             f"speech ratio   {d['speech_ratio']:.1%}",
             f"silences       {len(sil)}" + (": " + ", ".join(f"{s:.1f}-{e:.1f}"
                                                             for s, e in sil[:12]) if sil else "")
             + (" …" if len(sil) > 12 else ""),
             f"chunks         {len(d['chunks'])}: " + ", ".join(
                 f"{s:.1f}-{e:.1f}" for s, e in d["chunks"][:12])]
    return "\n".join(lines)


__all__ = ["Analysis", "BadAudio", "NoAudio", "analyze_file", "analyze_path", "finish",
           "format_analysis"]
