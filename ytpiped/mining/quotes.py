"""Evidence quote -> (start, end) timestamps, by finding it in a window's segments.

Matching ignores case, punctuation and spacing. An exact (normalised) match wins; else
the best run of the quote's words that appears in order in the transcript, if it covers
at least `min_ratio` of the quote (models paraphrase a little). The span is that of the
segments that hold the first and last matched word.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ytpiped.mining.windows import Segment

_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class QuoteSpan:
    start: float
    end: float
    exact: bool
    ratio: float  # share of the quote's words found, in order


def words(text: str) -> list[str]:
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'")]


def normalise(text: str) -> str:
    return " ".join(words(text))


def _indexed_words(segments: Sequence[Segment]) -> tuple[list[str], list[int]]:
    toks: list[str] = []
    owner: list[int] = []
    for i, seg in enumerate(segments):
        w = words(seg.text)
        toks.extend(w)
        owner.extend([i] * len(w))
    return toks, owner


def _find_exact(hay: list[str], needle: list[str]) -> int | None:
    n = len(needle)
    first = needle[0]
    for i in range(len(hay) - n + 1):
        if hay[i] == first and hay[i:i + n] == needle:
            return i
    return None


def locate_quote(quote: str, segments: Sequence[Segment], *,
                 min_ratio: float = 0.6) -> QuoteSpan | None:
    """Where `quote` is said in `segments`, or None if it cannot be found."""
    needle = words(quote)
    if not needle or not segments:
        return None
    hay, owner = _indexed_words(segments)
    if not hay:
        return None
    at = _find_exact(hay, needle)
    if at is not None:
        first, last = owner[at], owner[at + len(needle) - 1]
        return QuoteSpan(segments[first].start, segments[last].end, True, 1.0)
    matcher = difflib.SequenceMatcher(None, hay, needle, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    if not blocks:
        return None
    # keep matched blocks that sit close together in the transcript (one place, not scattered)
    best: list[difflib.Match] = []
    run: list[difflib.Match] = []
    for b in blocks:
        if run and b.a - (run[-1].a + run[-1].size) > max(3, len(needle)):
            run = []
        run.append(b)
        if sum(x.size for x in run) > sum(x.size for x in best):
            best = list(run)
    ratio = sum(b.size for b in best) / len(needle)
    if ratio < min_ratio:
        return None
    first = owner[best[0].a]
    last = owner[best[-1].a + best[-1].size - 1]
    return QuoteSpan(segments[first].start, segments[last].end, False, round(ratio, 3))
