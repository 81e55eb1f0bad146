"""How a batched window decoded whole becomes segments (`engines.whisper._split`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ytpiped.engines.whisper import PAUSE_S, SEGMENT_S, _split


def window(words: list[tuple[str, float, float]], text: str | None = None) -> Any:
    ws = [SimpleNamespace(word=w, start=a, end=b, probability=0.9) for w, a, b in words]
    return SimpleNamespace(words=ws, text=text if text is not None else "".join(
        w for w, _, _ in words), avg_logprob=-0.2, no_speech_prob=0.01, temperature=0.0)


def test_sentences_become_segments_with_their_words_times() -> None:
    s = window([(" Sleep", 0.0, 0.4), (" matters.", 0.4, 1.0), (" Coffee", 1.2, 1.6),
                (" hurts", 1.6, 2.0), (" it?", 2.0, 2.4), (" Yes", 2.5, 2.8)])
    segs = _split(s, offset=100.0, lo=100.0, hi=130.0, words=True)
    assert [x["text"] for x in segs] == ["Sleep matters.", "Coffee hurts it?", "Yes"]
    assert [(x["start"], x["end"]) for x in segs] == [(100.0, 101.0), (101.2, 102.4),
                                                      (102.5, 102.8)]
    assert [w["word"] for w in segs[1]["words"]] == [" Coffee", " hurts", " it?"]
    assert all(x["compression_ratio"] > 0 and x["avg_logprob"] == -0.2 for x in segs)


def test_a_pause_or_a_long_run_without_punctuation_cuts_too() -> None:
    paused = window([(" one", 0.0, 0.5), (" two", 0.5 + PAUSE_S, 1.0 + PAUSE_S)])
    assert [x["text"] for x in _split(paused, 0.0, 0.0, 30.0, False)] == ["one", "two"]
    run = window([(f" w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(50)])  # 25 s, no stop
    segs = _split(run, 0.0, 0.0, 30.0, False)
    assert len(segs) >= 2 and all(x["end"] - x["start"] <= SEGMENT_S for x in segs)
    assert " ".join(x["text"] for x in segs) == " ".join(f"w{i}" for i in range(50))
    assert not any("words" in x for x in segs)  # only with word_timestamps


def test_times_stay_inside_the_window_and_an_unaligned_window_is_one_segment() -> None:
    s = window([(" early", -0.3, 0.2), (" late.", 29.5, 30.6)])
    segs = _split(s, offset=10.0, lo=10.0, hi=40.0, words=True)
    assert segs[0]["start"] == 10.0 and segs[-1]["end"] == 40.0
    assert all(10.0 <= w["start"] <= w["end"] <= 40.0 for x in segs for w in x["words"])
    bare = window([], text=" Hello there.")
    assert [(x["start"], x["end"], x["text"]) for x in _split(bare, 5.0, 5.0, 20.0, True)] \
        == [(5.0, 20.0, "Hello there.")]
    assert _split(window([], text=" "), 0.0, 0.0, 30.0, True) == []
