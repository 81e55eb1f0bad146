from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ytpiped.audio.chunkplan import plan_chunks, silences, speech_ratio


def test_short_audio_is_one_chunk() -> None:
    assert plan_chunks(100.0, [], 900.0) == [(0.0, 100.0)]
    assert plan_chunks(0.0, [], 900.0) == []


def test_cuts_inside_the_longest_nearby_silence() -> None:
    sil = [(500.0, 501.0), (800.0, 803.0), (880.0, 881.0)]
    chunks = plan_chunks(2000.0, sil, 900.0)
    assert chunks[0] == (0.0, 801.5)  # the 3 s pause beats the 1 s one nearer the target
    assert all(e - s <= 900.0 for s, e in chunks)


def test_without_silences_cuts_at_fixed_points() -> None:
    assert plan_chunks(2000.0, [], 900.0) == [(0.0, 900.0), (900.0, 1800.0), (1800.0, 2000.0)]


def test_silence_detection_on_segment_loudness() -> None:
    seg = np.full(100, -20.0)  # 10 s at -20 LUFS
    seg[30:42] = -80.0  # 1.2 s pause
    seg[60:63] = -80.0  # 0.3 s pause: too short
    sil = silences(seg, integrated_lufs=-20.0, duration_s=10.0, min_silence_s=0.6)
    assert len(sil) == 1
    s, e = sil[0]
    assert 3.0 <= s <= 3.2 and 4.0 <= e <= 4.2
    assert speech_ratio(sil, 10.0) == pytest.approx(1 - (e - s) / 10.0)


spans = st.lists(st.tuples(st.floats(0, 5000), st.floats(0.1, 10)), max_size=40).map(
    lambda xs: sorted((round(s, 2), round(s + d, 2)) for s, d in xs))


@settings(max_examples=300, deadline=None)
@given(duration=st.floats(1, 5000), max_chunk=st.floats(30, 1200), sil=spans)
def test_plan_invariants(duration: float, max_chunk: float, sil: list[tuple[float, float]]
                         ) -> None:
    chunks = plan_chunks(duration, sil, max_chunk)
    assert chunks[0][0] == 0.0
    assert chunks[-1][1] == pytest.approx(duration, abs=1e-3)
    for (_, b), (c, _) in itertools.pairwise(chunks):
        assert b == c  # no gaps, no overlaps
    for s, e in chunks:
        assert 0 < e - s <= max_chunk + 1e-6
    # every cut lies inside a silence when one overlapped the search window before it
    for s, e in chunks[:-1]:
        window = (s + max_chunk * 2 / 3, s + max_chunk)
        if any(min(b, window[1]) > max(a, window[0]) and min(b, window[1]) > s for a, b in sil):
            assert any(a - 1e-3 <= e <= b + 1e-3 for a, b in sil)


def test_exclude_cuts_sponsor_ranges_out_of_the_plan() -> None:
    from ytpiped.audio.chunkplan import exclude

    plan = [(0.0, 30.0), (30.0, 61.0)]
    assert exclude(plan, []) == plan
    assert exclude(plan, [(36.1, 46.9)]) == [(0.0, 30.0), (30.0, 36.1), (46.9, 61.0)]
    assert exclude(plan, [(25.0, 35.0), (60.8, 61.0)]) == [(0.0, 25.0), (35.0, 60.8)]
    assert exclude(plan, [(0.0, 29.7)]) == [(30.0, 61.0)]  # a 0.3 s leftover is dropped
