from __future__ import annotations

import random

import pytest

from ytpiped.scheduling.tracker import Key, PerformanceTracker, PerfSample

GPU = Key("gpu", "large-v3-turbo", "float16", 8)
CPU = Key("cpu", "small", "int8", 1)


def sample(key: Key, audio: float, elapsed: float, at: float) -> PerfSample:
    return PerfSample(key.device_kind, key.model, key.compute_type, key.batch_size, audio, elapsed,
                  at)


def test_priors_until_three_samples() -> None:
    t = PerformanceTracker()
    assert t.predict(GPU, 100).seconds == pytest.approx(200.0)  # 2x audio
    assert t.predict(CPU, 100).seconds == pytest.approx(2400.0)  # 24x audio
    for i in range(2):
        t.record(sample(GPU, 600, 12 + i, i))
    assert not t.predict(GPU, 100).learned
    t.record(sample(GPU, 300, 6.5, 3))
    p = t.predict(GPU, 100)
    assert p.learned and p.samples == 3 and p.seconds < 10


def test_least_squares_recovers_overhead_and_rate() -> None:
    rng = random.Random(5)
    t = PerformanceTracker(half_life=1e9)  # no recency: a plain fit
    for i in range(100):
        audio = rng.uniform(60, 900)
        t.record(sample(CPU, audio, 3.0 + audio / 20 + rng.gauss(0, 0.5), i))
    fitted = t.fit(CPU)
    assert fitted is not None
    a, b, sd = fitted
    assert a == pytest.approx(3.0, abs=0.6) and b == pytest.approx(0.05, rel=0.03)
    assert 0.3 < sd < 0.8
    assert t.speed(CPU, 600) == pytest.approx(600 / (3 + 30), rel=0.05)


def test_recency_follows_drift() -> None:
    t = PerformanceTracker(half_life=10)
    for i in range(100):  # first fast, then the machine becomes twice as slow
        rate = 1 / 20 if i < 50 else 1 / 10
        t.record(sample(CPU, 600, 600 * rate, i))
    assert t.predict(CPU, 600).seconds == pytest.approx(60, rel=0.05)


def test_round_trip_through_samples() -> None:
    t = PerformanceTracker()
    for i in range(10):
        t.record(sample(GPU, 100 + i, 2 + i * 0.01, i))
        t.record(sample(CPU, 100 + i, 10 + i * 0.1, i))
    again = PerformanceTracker.from_samples(t.to_samples())
    for key in (GPU, CPU):
        assert again.predict(key, 300) == t.predict(key, 300)


def test_bad_samples_are_ignored() -> None:
    t = PerformanceTracker()
    t.record(sample(GPU, 0, 5, 0))
    t.record(sample(GPU, 10, -1, 1))
    assert t.to_samples() == []


def test_a_kept_fit_follows_each_new_sample() -> None:
    """The fit is kept between samples (a decision asks for it slots × chunks times), and a
    new sample of a key replaces that key's fit only."""
    t = PerformanceTracker()
    for i in range(3):
        t.record(sample(GPU, 100.0 * (i + 1), 10.0 * (i + 1), i))
        t.record(sample(CPU, 100.0 * (i + 1), 50.0 * (i + 1), i))
    assert t.predict(GPU, 600).seconds == pytest.approx(60.0)
    assert t.predict(GPU, 600) == t.predict(GPU, 600)
    cpu_before = t.predict(CPU, 600)
    for i in range(40):  # the GPU slows to 5x real time
        t.record(sample(GPU, 100.0, 20.0, 10 + i))
    assert t.predict(GPU, 100).seconds == pytest.approx(20.0, rel=0.05)
    assert t.predict(CPU, 600) == cpu_before
