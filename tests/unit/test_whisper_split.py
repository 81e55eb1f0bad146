"""How a batched window decoded whole becomes segments (`engines.whisper._split`), and
its words' times estimated from the audio when they are not aligned (`estimate_words`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from ytpiped.audio.decode import RATE
from ytpiped.engines.whisper import PAUSE_S, SEGMENT_S, _split, estimate_words


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


# --- times estimated from the audio (no word alignment) -----------------------------


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.full(int(seconds * RATE), 1e-5, dtype=np.float32)  # a noise floor, not zeros


def test_estimated_sentences_end_in_the_pauses_and_silence_takes_no_words() -> None:
    # three "sentences" of sound, their lengths unlike their share of the text, with a
    # 0.5-s and a 1.2-s pause; 2 s of silence before the first
    audio = np.concatenate([quiet(2.0), tone(3.0), quiet(0.5), tone(5.0), quiet(1.2),
                            tone(2.0)])
    text = " One two three. Four five six seven eight nine ten? Eleven twelve."
    ws = estimate_words(text, audio, start_s=100.0)
    assert "".join(w.word for w in ws) == text  # every word, in order, with its space
    assert [w.word for w in ws][:3] == [" One", " two", " three."]
    assert ws[0].start == pytest.approx(102.0, abs=0.05)  # where the sound starts
    assert ws[2].end == pytest.approx(105.0, abs=0.05)  # "three." ends as the pause starts
    assert ws[3].start == pytest.approx(105.5, abs=0.05)
    assert ws[9].end == pytest.approx(110.5, abs=0.05) and ws[10].start == \
        pytest.approx(111.7, abs=0.05)
    assert ws[-1].end == pytest.approx(113.7, abs=0.05)
    starts = [w.start for w in ws]
    assert starts == sorted(starts) and all(w.start <= w.end for w in ws)
    segs = _split(window([], text=text), 0.0, 100.0, 113.7, False, ws)
    assert [x["text"] for x in segs] == ["One two three.", "Four five six seven eight nine ten?",
                                        "Eleven twelve."]
    assert [t for x in segs for t in (x["start"], x["end"])] == pytest.approx(
        [102.0, 105.0, 105.5, 110.5, 111.7, 113.7], abs=0.05)


def test_a_sentence_end_far_from_any_pause_keeps_its_estimate() -> None:
    # one unbroken sound: nothing to snap to, the text's shares decide
    ws = estimate_words(" Aa bb. Cc dd.", tone(4.0), start_s=0.0)
    assert [w.word for w in ws] == [" Aa", " bb.", " Cc", " dd."]
    assert ws[0].start == 0.0 and ws[-1].end == pytest.approx(4.0, abs=0.03)
    assert 1.5 <= ws[2].start <= 2.5  # about half-way


def test_silence_or_no_text_estimates_nothing_odd() -> None:
    assert estimate_words("  ", tone(1.0), 0.0) == []
    ws = estimate_words(" Hello there.", np.zeros(RATE, dtype=np.float32), 7.0)
    assert [w.word for w in ws] == [" Hello", " there."]
    assert all(7.0 <= w.start <= w.end <= 8.0 for w in ws)
    assert [(w.start, w.end) for w in estimate_words(" Hi", np.zeros(0, np.float32), 3.0)] \
        == [(3.0, 3.0)]
