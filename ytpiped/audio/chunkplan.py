"""Silence map and chunk plan. Pure.

Silences are runs of 100 ms segments whose loudness, smoothed over 300 ms, lies more than
`threshold_lu` below the integrated level (or below -60 LUFS), lasting at least
`min_silence_s`. The chunk plan cuts audio longer than `max_chunk_s` at the longest
silence in the last third before each target point (else at the target itself), so the
chunks cover the file exactly, with no gaps, none longer than `max_chunk_s`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ytpiped.audio.loudness import SEGMENT_S

Span = tuple[float, float]
ABSOLUTE_SILENCE_LUFS = -60.0
SEARCH_FRACTION = 1 / 3  # look for a silence in the last third before a target point


def smooth(segment_lufs: npt.NDArray[np.float64], width: int = 3) -> npt.NDArray[np.float64]:
    """Centered moving average of segment energy, back in LUFS (inf-safe)."""
    if segment_lufs.size == 0:
        return segment_lufs
    energy = np.power(10.0, (segment_lufs + 0.691) / 10.0)
    kernel = np.ones(width) / width
    with np.errstate(divide="ignore"):
        return np.asarray(-0.691 + 10 * np.log10(np.convolve(energy, kernel, mode="same")),
                          dtype=np.float64)


def silences(segment_lufs: npt.NDArray[np.float64], integrated_lufs: float, duration_s: float,
             threshold_lu: float = -20.0, min_silence_s: float = 0.6) -> list[Span]:
    """[start, end] seconds of every quiet run at least `min_silence_s` long."""
    if segment_lufs.size == 0:
        return [(0.0, duration_s)] if duration_s >= min_silence_s else []
    level = smooth(segment_lufs)
    floor = ABSOLUTE_SILENCE_LUFS
    if math.isfinite(integrated_lufs):
        floor = max(floor, integrated_lufs + threshold_lu)
    quiet = level < floor
    out: list[Span] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        s, e = start * SEGMENT_S, min(duration_s, end * SEGMENT_S)
        if end == quiet.size:  # a trailing partial segment is quiet too
            e = duration_s
        if e - s >= min_silence_s - 1e-9:
            out.append((round(float(s), 3), round(float(e), 3)))
    return out


def speech_ratio(silence_spans: list[Span], duration_s: float) -> float:
    if duration_s <= 0:
        return 0.0
    quiet = sum(e - s for s, e in silence_spans)
    return max(0.0, min(1.0, 1.0 - quiet / duration_s))


def plan_chunks(duration_s: float, silence_spans: list[Span], max_chunk_s: float) -> list[Span]:
    """Cover [0, duration] with chunks <= max_chunk_s, cut inside silences when possible."""
    if duration_s <= 0:
        return []
    if max_chunk_s <= 0:
        raise ValueError("max_chunk_s must be positive")
    cuts: list[float] = []
    start = 0.0
    while duration_s - start > max_chunk_s:
        target = start + max_chunk_s
        lo = target - max_chunk_s * SEARCH_FRACTION
        best: tuple[float, float] | None = None  # (overlap length, cut point)
        for s, e in silence_spans:
            a, b = max(s, lo), min(e, target)
            if b <= a or b <= start:
                continue
            cand = (b - a, (a + b) / 2)
            if best is None or cand[0] > best[0]:
                best = cand
        cut = best[1] if best is not None else target
        cut = min(target, max(cut, start + 1e-3))
        cuts.append(math.floor(float(cut) * 1000) / 1000)  # never past the target
        start = cuts[-1]
    edges = [0.0, *cuts, float(duration_s)]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def exclude(chunks: list[Span], ranges: list[Span], min_s: float = 0.5) -> list[Span]:
    """The chunks with `ranges` (SponsorBlock segments) cut out: a chunk overlapping a range
    keeps the parts before and after it; pieces shorter than `min_s` are dropped."""
    out: list[Span] = []
    for a, b in chunks:
        pieces = [(a, b)]
        for s, e in sorted(ranges):
            kept: list[Span] = []
            for x, y in pieces:
                if e <= x or s >= y:
                    kept.append((x, y))
                    continue
                if s > x:
                    kept.append((x, s))
                if e < y:
                    kept.append((e, y))
            pieces = kept
        out += [(x, y) for x, y in pieces if y - x >= min_s]
    return out
