"""A chunk read from where it starts (`span.read_span`) holds the same samples, at the
same place, as the same span of one full decode (what the analysis stage planned on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ytpiped.audio.decode import RATE, decode
from ytpiped.engines.span import read_span


def offset(got: np.ndarray, full: np.ndarray, lo: int, reach: int = 2_000) -> int:
    """Samples by which `got` (read from `lo`) sits against `full`: 0 when aligned."""
    a = got[RATE // 4: RATE // 4 + 2 * RATE]
    scores = [float(np.dot(a, full[lo + RATE // 4 + k: lo + RATE // 4 + k + a.size]))
              for k in range(-reach, reach + 1)]
    return int(np.argmax(scores)) - reach


@pytest.mark.parametrize("name", ["coffee.m4a", "ocean.mp3", "solar.webm", "long.opus"])
@pytest.mark.parametrize("start", [2.3, 4.0, 6.71])
def test_a_seeked_span_lines_up_with_the_full_decode(media: Path, name: str,
                                                     start: float) -> None:
    full = decode(media / name)
    lo = round(start * RATE)
    got = read_span(media / name, start, start + 4.0)
    assert got.size == 4 * RATE
    # mp3 drops its encoder delay (69 ms here) at the start of a full decode: a seeked read
    # must count from the same first sample. Opus in WebM keeps ~2 ms of slack: its
    # timestamps are whole milliseconds and its pre-skip is not one.
    assert abs(offset(got, full, lo)) <= 32


@pytest.mark.parametrize("name", ["coffee.m4a", "ocean.mp3", "solar.webm", "long.opus"])
def test_a_seeked_span_that_runs_past_the_end_holds_the_rest_of_the_file(media: Path,
                                                                         name: str) -> None:
    """The resampler hands out whole seconds: what it still holds when the file ends
    inside the chunk is part of the chunk."""
    full = decode(media / name)
    lo = round(2.3 * RATE)
    got = read_span(media / name, 2.3, full.size / RATE + 5.0)
    assert abs(got.size - (full.size - lo)) <= 32
    assert abs(offset(got, full, lo)) <= 32
