"""Transcript -> mining windows of about `window_tokens`, overlapping at segment boundaries.

Tokens are approximated (no tokenizer is loaded): about four characters per token, never
fewer than the number of words. A segment longer than a window is split at sentence ends,
else at word boundaries, and its time span is shared out by character offset. Neighbouring
windows share whole segments worth up to `overlap_tokens`, so a claim cut by one window's
edge is whole in the next; each window keeps its time span and its own segments (for
locating evidence quotes), with their word times when the transcript has them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()  # word times (transcribe.word_timestamps), in order


@dataclass(frozen=True)
class Window:
    idx: int
    start: float
    end: float
    segments: tuple[Segment, ...]
    chapter: str | None = None  # the video chapter it lies in (chapter_windows)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    @property
    def tokens(self) -> int:
        return sum(approx_tokens(s.text) for s in self.segments)


def approx_tokens(text: str) -> int:
    """Rough token count: ceil(chars / 4), at least one per word; 0 for blank text."""
    stripped = text.strip()
    if not stripped:
        return 0
    return max(len(stripped.split()), math.ceil(len(stripped) / 4))


def parse_segments(raw: Iterable[Mapping[str, Any]]) -> list[Segment]:
    """Transcript JSON segments -> Segments (blank ones dropped, times made monotonic)."""
    out: list[Segment] = []
    for r in raw:
        text = " ".join(str(r.get("text", "")).split())
        if not text:
            continue
        start = float(r.get("start", 0.0))
        end = max(start, float(r.get("end", start)))
        out.append(Segment(start, end, text, _parse_words(r.get("words") or ())))
    return out


def _parse_words(raw: Iterable[Mapping[str, Any]]) -> tuple[Word, ...]:
    out: list[Word] = []
    for w in raw:
        text = str(w.get("word", "")).strip()
        if text:
            start = float(w.get("start", 0.0))
            out.append(Word(start, max(start, float(w.get("end", start))), text))
    return tuple(out)


def _pieces(text: str, max_tokens: int) -> list[str]:
    """Split text into pieces of at most `max_tokens`: sentences first, then words."""
    units: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if approx_tokens(sentence) <= max_tokens:
            units.append(sentence)
            continue
        words: list[str] = []
        for word in sentence.split():
            if words and approx_tokens(" ".join([*words, word])) > max_tokens:
                units.append(" ".join(words))
                words = []
            words.append(word)
        if words:
            units.append(" ".join(words))
    pieces: list[str] = []
    for unit in units:  # re-join short sentences up to the limit
        if pieces and approx_tokens(pieces[-1] + " " + unit) <= max_tokens:
            pieces[-1] = pieces[-1] + " " + unit
        else:
            pieces.append(unit)
    return pieces


def split_long(segments: Sequence[Segment], max_tokens: int) -> list[Segment]:
    """Split every segment above `max_tokens`; times are shared out by character offset,
    and each piece keeps its own words (when the segment's words are its text's words)."""
    out: list[Segment] = []
    for seg in segments:
        if approx_tokens(seg.text) <= max_tokens:
            out.append(seg)
            continue
        pieces = _pieces(seg.text, max_tokens)
        total = sum(len(p) for p in pieces) or 1
        counts = [len(p.split()) for p in pieces]
        keep_words = sum(counts) == len(seg.words)
        t, span, k = seg.start, seg.end - seg.start, 0
        for p, n in zip(pieces, counts, strict=True):
            nxt = t + span * len(p) / total
            out.append(Segment(t, nxt, p, seg.words[k:k + n] if keep_words else ()))
            t, k = nxt, k + n
    return out


def make_windows(segments: Sequence[Segment], window_tokens: int,
                 overlap_tokens: int) -> list[Window]:
    """Greedy windows of whole segments, each <= window_tokens (after splitting long ones),
    neighbours sharing trailing segments worth <= overlap_tokens. Always makes progress."""
    if window_tokens < 1:
        raise ValueError("window_tokens must be >= 1")
    overlap = max(0, min(overlap_tokens, window_tokens // 2))
    segs = split_long(segments, max(1, window_tokens - overlap))
    costs = [approx_tokens(s.text) for s in segs]
    windows: list[Window] = []
    lo = 0
    while lo < len(segs):
        hi, used = lo, 0
        while hi < len(segs) and (hi == lo or used + costs[hi] <= window_tokens):
            used += costs[hi]
            hi += 1
        chunk = tuple(segs[lo:hi])
        windows.append(Window(len(windows), chunk[0].start, chunk[-1].end, chunk))
        if hi >= len(segs):
            break
        back, shared = hi, 0
        while back - 1 > lo and shared + costs[back - 1] <= overlap:
            back -= 1
            shared += costs[back]
        lo = back
    return windows


def chapter_windows(segments: Sequence[Segment], chapters: Sequence[Mapping[str, Any]],
                    window_tokens: int, overlap_tokens: int) -> list[Window]:
    """Windows that never cross a chapter boundary (a segment belongs to the chapter its
    middle falls in; a window's span is clipped to its chapter), each carrying its
    chapter's title; numbered in order. Segments outside every chapter form windows of
    their own, without a title."""
    spans = sorted((float(c["start"]), float(c["end"]), str(c.get("title") or ""))
                   for c in chapters)
    groups: list[tuple[tuple[float, float, str] | None, list[Segment]]] = []
    for seg in segments:
        mid = (seg.start + seg.end) / 2
        span = next((c for c in spans if c[0] <= mid < c[1]), None)
        if not groups or groups[-1][0] != span:
            groups.append((span, []))
        groups[-1][1].append(seg)
    out: list[Window] = []
    for span, group in groups:
        lo, hi, title = span if span is not None else (-math.inf, math.inf, None)
        for w in make_windows(group, window_tokens, overlap_tokens):
            out.append(Window(len(out), max(w.start, lo), min(w.end, hi), w.segments, title))
    return out


def split_window(window: Window) -> tuple[Window, Window] | None:
    """Two halves (by tokens) of a window the server found too long for its context, same
    index; a single segment is split at sentences or words first. None: nothing to split."""
    segs = list(window.segments)
    if len(segs) == 1:
        segs = split_long(segs, max(1, (approx_tokens(segs[0].text) + 1) // 2))
    if len(segs) < 2:
        return None
    costs = [approx_tokens(s.text) for s in segs]
    half, used, cut = sum(costs) / 2, 0, 0
    while cut < len(segs) - 1 and (cut == 0 or used + costs[cut] / 2 <= half):
        used += costs[cut]
        cut += 1
    first, second = tuple(segs[:cut]), tuple(segs[cut:])
    return (Window(window.idx, first[0].start, first[-1].end, first, window.chapter),
            Window(window.idx, second[0].start, second[-1].end, second, window.chapter))
