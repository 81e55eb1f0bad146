from __future__ import annotations

from ytpiped.mining.claims import place_claims
from ytpiped.mining.quotes import locate_quote
from ytpiped.mining.schema import Claim, WindowResult
from ytpiped.mining.windows import Segment, Word, make_windows, parse_segments, split_long

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


# --- word times (transcribe.word_timestamps) ------------------------------------------

def _timed(start: float, end: float, text: str) -> Segment:
    """A segment whose words are evenly timed across it, as Whisper's word times are."""
    toks = text.split()
    step = (end - start) / len(toks)
    return Segment(start, end, text, tuple(Word(round(start + i * step, 3),
                                                round(start + (i + 1) * step, 3), w)
                                           for i, w in enumerate(toks)))


TIMED = [_timed(10.0, 14.0, "Coffee contains caffeine, which blocks"),
         _timed(14.0, 18.5, "adenosine in the brain. Drinking coffee late"),
         _timed(18.5, 22.0, "in the day reduces deep sleep.")]


def test_a_quote_that_starts_mid_segment_gets_its_first_words_time() -> None:
    span = locate_quote("Drinking coffee late in the day", TIMED)
    assert span is not None and span.exact
    first = TIMED[1].words[4]  # "Drinking"
    last = TIMED[2].words[2]  # "day"
    assert (first.text, last.text) == ("Drinking", "day")
    assert (span.start, span.end) == (first.start, last.end)
    assert span.start > TIMED[1].start and span.end < TIMED[2].end


def test_an_approximate_quote_gets_word_times_too() -> None:
    span = locate_quote("caffeine which blocks the adenosine", TIMED)
    assert span is not None and not span.exact
    assert span.start == TIMED[0].words[2].start  # "caffeine,"
    assert span.end == TIMED[1].words[0].end  # "adenosine"


def test_without_words_the_segment_times_are_kept() -> None:
    mixed = [TIMED[0], SEGS[1], SEGS[2]]  # words only in the first segment
    span = locate_quote("which blocks adenosine in the brain", mixed)
    assert span is not None
    assert (span.start, span.end) == (TIMED[0].words[3].start, SEGS[1].end)
    span = locate_quote("Drinking coffee late in the day", mixed)
    assert span is not None and (span.start, span.end) == (14.0, 22.0)


def test_claims_from_a_transcript_with_words_get_word_times() -> None:
    """From the transcript JSON (as the transcribe stage writes it) to the stored claim."""
    raw = [{"start": s.start, "end": s.end, "text": s.text,
            "words": [{"start": w.start, "end": w.end, "word": " " + w.text,
                       "probability": 0.9} for w in s.words]} for s in TIMED]
    # a small window size splits the long segments: each piece keeps its own words
    windows = make_windows(parse_segments(raw), window_tokens=12, overlap_tokens=0)
    assert len(windows) > 1
    assert all(s.words for w in windows for s in w.segments)
    result = WindowResult(claims=[Claim(text="Late coffee reduces deep sleep.", type="causal",
                                        evidence="reduces deep sleep", confidence=0.9)],
                          people=[], concepts=[])
    window = next(w for w in windows if "reduces deep sleep" in w.text)
    claim = place_claims(result, window)["claims"][0]
    assert (claim["start"], claim["end"]) == (TIMED[2].words[3].start, TIMED[2].words[5].end)
    assert claim["start"] > TIMED[2].start


def test_split_segments_without_matching_words_fall_back_to_segment_times() -> None:
    seg = Segment(0.0, 8.0, "one two three. four five six.",
                  (Word(0.0, 1.0, "one"), Word(1.0, 2.0, "two")))  # words do not match
    pieces = split_long([seg], max_tokens=4)
    assert len(pieces) == 2 and all(not p.words for p in pieces)
    assert [(p.start, p.end) for p in pieces] == [(0.0, 4.0), (4.0, 8.0)]
