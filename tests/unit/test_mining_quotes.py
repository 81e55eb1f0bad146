from __future__ import annotations

from ytpiped.mining.quotes import locate_quote
from ytpiped.mining.windows import Segment

SEGS = [
    Segment(10.0, 14.0, "Coffee contains caffeine, which blocks"),
    Segment(14.0, 18.5, "adenosine in the brain. Drinking coffee late"),
    Segment(18.5, 22.0, "in the day reduces deep sleep."),
]


def test_exact_quote_across_segments_spans_both() -> None:
    span = locate_quote("caffeine, which blocks adenosine in the brain", SEGS)
    assert span is not None
    assert (span.start, span.end, span.exact) == (10.0, 18.5, True)


def test_match_ignores_case_punctuation_and_spacing() -> None:
    span = locate_quote("DRINKING  coffee late -- in the day!", SEGS)
    assert span is not None and span.exact
    assert (span.start, span.end) == (14.0, 22.0)


def test_single_segment_quote() -> None:
    span = locate_quote("reduces deep sleep", SEGS)
    assert span is not None and (span.start, span.end) == (18.5, 22.0)


def test_light_paraphrase_is_found_approximately() -> None:
    span = locate_quote("drinking coffee late in the evening reduces deep sleep", SEGS)
    assert span is not None and not span.exact
    assert span.start == 14.0 and span.end == 22.0
    assert 0.6 <= span.ratio < 1.0


def test_unrelated_or_empty_quote_is_not_found() -> None:
    assert locate_quote("the stock market crashed in october", SEGS) is None
    assert locate_quote("", SEGS) is None
    assert locate_quote("...", SEGS) is None
    assert locate_quote("coffee", []) is None


def test_scattered_words_do_not_count_as_a_match() -> None:
    segs = [Segment(float(i), i + 1.0, f"{w} filler filler filler filler filler")
            for i, w in enumerate(["alpha", "beta", "gamma", "delta"])]
    assert locate_quote("alpha beta gamma delta", segs) is None
