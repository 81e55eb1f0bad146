from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pyloudnorm as pyln
import pytest

from ytpiped.audio.loudness import LoudnessMeter, measure

RNG = np.random.default_rng(1770)


def tone(rate: int, seconds: float, dbfs: float, freq: float = 997.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("dbfs", [-6.0, -20.0, -40.0])
def test_sine_matches_pyloudnorm(rate: int, dbfs: float) -> None:
    x = tone(rate, 6.0, dbfs)
    assert measure(x, rate).integrated_lufs == pytest.approx(
        pyln.Meter(rate).integrated_loudness(x), abs=0.1)


def test_full_scale_997hz_sine_at_48k_is_about_minus_3_lufs() -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS
    assert measure(tone(48000, 5.0, 0.0), 48000).integrated_lufs == pytest.approx(-3.01, abs=0.05)


def test_speech_fixture_matches_pyloudnorm(media: object) -> None:
    from ytpiped.audio.decode import decode

    x = decode(f"{media}/coffee.m4a").astype(np.float64)
    assert measure(x, 16000).integrated_lufs == pytest.approx(
        pyln.Meter(16000).integrated_loudness(x), abs=0.1)


def test_stereo_matches_pyloudnorm() -> None:
    rate = 48000
    x = np.stack([tone(rate, 5.0, -18.0, 440.0), 0.05 * RNG.standard_normal(rate * 5)], axis=1)
    assert measure(x, rate).integrated_lufs == pytest.approx(
        pyln.Meter(rate).integrated_loudness(x), abs=0.1)


def test_gating_ignores_silence_padding() -> None:
    rate = 16000
    speechlike = 0.1 * RNG.standard_normal(rate * 40)  # long enough for edge blocks not to count
    padded = np.concatenate([np.zeros(rate * 20), speechlike, np.zeros(rate * 20)])
    a, b = measure(speechlike, rate).integrated_lufs, measure(padded, rate).integrated_lufs
    assert b == pytest.approx(a, abs=0.1)
    assert b == pytest.approx(pyln.Meter(rate).integrated_loudness(padded), abs=0.1)


def test_relative_gate_drops_quiet_passages() -> None:
    rate = 16000
    loud, quiet = tone(rate, 10, -20.0), tone(rate, 10, -45.0)  # quiet is 25 LU below
    both = measure(np.concatenate([loud, quiet]), rate).integrated_lufs
    assert both == pytest.approx(measure(loud, rate).integrated_lufs, abs=0.1)


def test_silence_is_minus_infinity() -> None:
    r = measure(np.zeros(16000 * 3), 16000)
    assert r.integrated_lufs == float("-inf") and r.loudness_range_lu == 0.0


def test_streaming_equals_one_shot() -> None:
    x = 0.2 * RNG.standard_normal(16000 * 20)
    meter = LoudnessMeter(16000)
    for i in range(0, x.size, 7777):  # blocks that do not align with 100 ms segments
        meter.feed(x[i:i + 7777])
    streamed, whole = meter.result(), measure(x, 16000)
    assert streamed.integrated_lufs == pytest.approx(whole.integrated_lufs, abs=1e-9)
    assert np.allclose(streamed.short_term_lufs, whole.short_term_lufs)


def test_loudness_range_of_two_levels() -> None:
    rate = 16000
    x = np.concatenate([tone(rate, 30, -20.0), tone(rate, 30, -30.0)])
    r = measure(x, rate)
    assert r.loudness_range_lu == pytest.approx(10.0, abs=0.6)
    assert measure(tone(rate, 30, -20.0), rate).loudness_range_lu == pytest.approx(0.0, abs=0.1)


def test_channel_mismatch_is_an_error() -> None:
    meter = LoudnessMeter(16000, channels=2)
    with pytest.raises(ValueError, match="expected 2 channels"):
        meter.feed(np.zeros(100))


@pytest.mark.parametrize("rate", [16000, 48000])
def test_streamed_k_weighting_equals_the_recursive_filter(rate: int) -> None:
    from scipy.signal import sosfilt

    from ytpiped.audio.loudness import KFilter, k_weighting_sos

    x = np.concatenate([0.3 * RNG.standard_normal(rate * 3), tone(rate, 2.0, -12.0)])
    want = sosfilt(k_weighting_sos(rate), x)
    f = KFilter(rate)
    cuts = [0, 1, 777, rate, rate + 5, 3 * rate, x.size]  # blocks of any size, one sample too
    got = np.concatenate([f(x[a:b]) for a, b in itertools.pairwise(cuts)])
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-6 * np.max(np.abs(want))


def test_measuring_a_file_does_not_import_scipy(media: object) -> None:
    """`scipy.signal` costs a second of CPU to import: what a one-shot run would take from
    its workers while they start."""
    code = ("import sys; from ytpiped.audio.analysis import analyze_path; "
            f"a = analyze_path({str(media)!r} + '/coffee.m4a', max_chunk_s=900); "
            "assert a.integrated_lufs is not None; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
