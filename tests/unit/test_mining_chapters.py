"""Chapters bound mining windows, and each window's prompt names its chapter. Pure."""

from __future__ import annotations

from ytpiped.mining import prompts
from ytpiped.mining.windows import Segment, chapter_windows, make_windows

SEGS = [Segment(float(i), float(i + 1), f"sentence number {i} of the talk") for i in range(12)]
CHAPTERS = [{"start": 0.0, "end": 5.0, "title": "Intro"},
            {"start": 5.0, "end": 12.0, "title": "Main part"}]


def test_windows_never_cross_a_chapter_boundary() -> None:
    plain = make_windows(SEGS, 40, 10)
    assert any(w.start < 5.0 < w.end for w in plain)  # without chapters they would
    windows = chapter_windows(SEGS, CHAPTERS, 40, 10)
    assert [w.idx for w in windows] == list(range(len(windows)))
    for w in windows:
        chapter = next(c for c in CHAPTERS if c["title"] == w.chapter)
        assert chapter["start"] <= w.start and w.end <= chapter["end"]
    covered = {s for w in windows for s in w.segments}
    assert covered == set(SEGS)
    assert {w.chapter for w in windows} == {"Intro", "Main part"}


def test_segments_outside_chapters_get_untitled_windows() -> None:
    windows = chapter_windows(SEGS, CHAPTERS[:1], 1000, 0)
    assert [(w.chapter, w.start, w.end) for w in windows] == [("Intro", 0.0, 5.0),
                                                              (None, 5.0, 12.0)]


def test_window_prompt_names_the_chapter_only_when_there_is_one() -> None:
    with_chapter = prompts.window_messages("T", "C", "S", "text", 0.0, 5.0, "Intro")
    without = prompts.window_messages("T", "C", "S", "text", 0.0, 5.0)
    assert "Chapter: Intro\nWindow: 0.0s-5.0s" in with_chapter[1]["content"]
    assert "Chapter:" not in without[1]["content"]


def test_a_segment_across_a_boundary_goes_by_its_middle_and_spans_are_clipped() -> None:
    segs = [Segment(0.0, 4.0, "first part here"), Segment(4.0, 7.0, "crosses the edge now"),
            Segment(7.0, 9.0, "second part here")]
    windows = chapter_windows(segs, CHAPTERS, 1000, 0)
    assert [(w.chapter, w.start, w.end, len(w.segments)) for w in windows] == [
        ("Intro", 0.0, 4.0, 1), ("Main part", 5.0, 9.0, 2)]  # 4-7 s: middle 5.5 s
