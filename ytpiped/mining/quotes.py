"""Evidence quote -> (start, end) timestamps, by finding it in a window's segments.

Matching ignores case, punctuation and spacing. An exact (normalised) match wins; else
the best run of the quote's words that appears in order in the transcript, if it covers
at least `min_ratio` of the quote (models paraphrase a little). The span runs from the
first matched word to the last: word-accurate where the transcript has word times
(`transcribe.word_timestamps`), else from the start of the segment holding the first
word to the end of the one holding the last.
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


def _indexed_words(segments: Sequence[Segment]) -> tuple[list[str], list[tuple[float, float]]]:
    """The transcript's words and the (start, end) of each: its own word's times where the
    segment has them, else the segment's."""
    toks: list[str] = []
    times: list[tuple[float, float]] = []
    for seg in segments:
        if seg.words:
            for w in seg.words:
                got = words(w.text)
                toks.extend(got)
                times.extend([(w.start, w.end)] * len(got))
        else:
            got = words(seg.text)
            toks.extend(got)
            times.extend([(seg.start, seg.end)] * len(got))
    return toks, times


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
    hay, times = _indexed_words(segments)
    if not hay:
        return None
    at = _find_exact(hay, needle)
    if at is not None:
        return QuoteSpan(times[at][0], times[at + len(needle) - 1][1], True, 1.0)
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
    first, last = times[best[0].a], times[best[-1].a + best[-1].size - 1]
    return QuoteSpan(first[0], last[1], False, round(ratio, 3))
