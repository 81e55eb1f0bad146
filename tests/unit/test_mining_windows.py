from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from ytpiped.mining.windows import (
    Segment,
    approx_tokens,
    make_windows,
    parse_segments,
    split_long,
)


def segs(texts: list[str], seg_s: float = 5.0) -> list[Segment]:
    return [Segment(i * seg_s, (i + 1) * seg_s, t) for i, t in enumerate(texts)]


def test_approx_tokens_counts_words_and_chars() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("   ") == 0
    assert approx_tokens("a b c d e") == 5  # words beat chars/4
    assert approx_tokens("x" * 40) == 10


def test_empty_transcript_has_no_windows() -> None:
    assert make_windows([], 100, 10) == []


def test_tiny_transcript_is_one_window_with_its_span() -> None:
    ws = make_windows(segs(["Hello there."]), 1500, 200)
    assert len(ws) == 1
    assert (ws[0].start, ws[0].end, ws[0].text) == (0.0, 5.0, "Hello there.")


def test_windows_overlap_by_whole_segments() -> None:
    texts = [f"sentence number {i} is here." for i in range(40)]  # ~7 tokens each
    ws = make_windows(segs(texts), 50, 15)
    assert len(ws) > 3
    for a, b in itertools.pairwise(ws):
        shared = set(a.segments) & set(b.segments)
        assert shared, "neighbours share segments"
        assert sum(approx_tokens(s.text) for s in shared) <= 15
        assert b.segments[0] == a.segments[len(a.segments) - len(shared)]
    covered = {s for w in ws for s in w.segments}
    assert covered == set(segs(texts))
    assert all(w.tokens <= 50 for w in ws)
    assert [w.idx for w in ws] == list(range(len(ws)))


def test_huge_segment_without_punctuation_is_split_with_interpolated_times() -> None:
    text = " ".join(f"word{i}" for i in range(3000))
    ws = make_windows([Segment(100.0, 400.0, text)], 200, 20)
    assert len(ws) > 10
    assert all(w.tokens <= 200 for w in ws)
    assert ws[0].start == 100.0
    assert abs(ws[-1].end - 400.0) < 1e-6
    starts = [w.start for w in ws]
    assert starts == sorted(starts)
    joined = " ".join(s.text for s in split_long([Segment(100.0, 400.0, text)], 180))
    assert joined == text  # nothing lost or reordered


def test_long_segment_splits_at_sentence_ends_first() -> None:
    text = ("This is the first sentence of a long monologue. " * 30).strip()
    pieces = split_long([Segment(0.0, 60.0, text)], 60)
    assert len(pieces) > 1
    assert all(p.text.endswith(".") for p in pieces)


def test_overlap_larger_than_window_still_progresses() -> None:
    ws = make_windows(segs(["one two three four"] * 10), 8, 100)
    assert len(ws) >= 5
    firsts = [w.segments[0].start for w in ws]
    assert firsts == sorted(set(firsts))


def test_parse_segments_drops_blank_and_fixes_times() -> None:
    out = parse_segments([{"start": 1, "end": 0.5, "text": "  a   b "}, {"start": 2, "text": ""}])
    assert out == [Segment(1.0, 1.0, "a b")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab .", min_size=0, max_size=120), max_size=40),
       st.integers(min_value=5, max_value=80), st.integers(min_value=0, max_value=60))
def test_windows_cover_everything_within_budget(texts: list[str], window: int,
                                                overlap: int) -> None:
    segments = parse_segments({"start": i, "end": i + 1, "text": t} for i, t in enumerate(texts))
    ws = make_windows(segments, window, overlap)
    assert all(w.tokens <= window for w in ws)
    words_in = " ".join(s.text for s in segments).split()
    assert not words_in or {s for w in ws for s in w.segments}
    firsts = [w.segments[0].start for w in ws]
    assert firsts == sorted(firsts)
    covered = " ".join(s.text for s in split_long(segments, max(1, window - min(
        overlap, window // 2))))
    assert covered.split() == words_in
