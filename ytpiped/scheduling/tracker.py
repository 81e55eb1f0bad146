"""PerformanceTracker: learned processing time per (device kind, model, compute type,
batch size) as time = a + b · audio_seconds. Pure (time is passed in).

Until a key has 3 samples, the original design's priors hold: processing takes 2× the
audio length on a GPU and 24× on a CPU (deliberately pessimistic, so unknown devices are
not over-trusted; real speeds replace them after three jobs). Fits are weighted least
squares with exponential recency weights (half-life `half_life` samples), so the model
follows drift (thermal throttling, a busier machine); the residual spread is the
prediction's uncertainty.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass

PRIOR_SECONDS_PER_AUDIO_SECOND = {"gpu": 2.0, "cpu": 24.0}
MIN_SAMPLES = 3


@dataclass(frozen=True)
class Key:
    device_kind: str  # "gpu" | "cpu"
    model: str
    compute_type: str
    batch_size: int = 1


@dataclass(frozen=True)
class PerfSample:
    device_kind: str
    model: str
    compute_type: str
    batch_size: int
    audio_s: float
    elapsed_s: float
    at: float

    @property
    def key(self) -> Key:
        return Key(self.device_kind, self.model, self.compute_type, self.batch_size)


@dataclass(frozen=True)
class Prediction:
    seconds: float
    stddev: float
    samples: int
    learned: bool  # False: still the prior


class PerformanceTracker:
    def __init__(self, *, window: int = 200, half_life: float = 30.0) -> None:
        self.window = window
        self.decay = 0.5 ** (1.0 / half_life)
        self._samples: dict[Key, deque[PerfSample]] = defaultdict(lambda: deque(maxlen=window))
        self._fits: dict[Key, tuple[float, float, float] | None] = {}  # until the next sample

    @classmethod
    def from_samples(cls, samples: list[PerfSample], **kwargs: float) -> PerformanceTracker:
        t = cls(**kwargs)  # type: ignore[arg-type]
        for s in sorted(samples, key=lambda s: s.at):
            t._samples[s.key].append(s)
        t._fits.clear()
        return t

    def to_samples(self) -> list[PerfSample]:
        return sorted((s for q in self._samples.values() for s in q), key=lambda s: s.at)

    def record(self, sample: PerfSample) -> None:
        if sample.audio_s > 0 and sample.elapsed_s >= 0:
            self._samples[sample.key].append(sample)
            self._fits.pop(sample.key, None)

    def fit(self, key: Key) -> tuple[float, float, float] | None:
        """(a, b, residual stddev) of the weighted fit, or None before MIN_SAMPLES; kept
        until the key's next sample (a dispatch decision asks for it slots × chunks times)."""
        if key not in self._fits:
            self._fits[key] = self._fit(key)
        return self._fits[key]

    def _fit(self, key: Key) -> tuple[float, float, float] | None:
        q = self._samples.get(key)
        if not q or len(q) < MIN_SAMPLES:
            return None
        n = len(q)
        w = [self.decay ** (n - 1 - i) for i in range(n)]  # newest weighs 1
        xs = [s.audio_s for s in q]
        ys = [s.elapsed_s for s in q]
        sw = sum(w)
        mx = sum(wi * x for wi, x in zip(w, xs, strict=True)) / sw
        my = sum(wi * y for wi, y in zip(w, ys, strict=True)) / sw
        sxx = sum(wi * (x - mx) ** 2 for wi, x in zip(w, xs, strict=True))
        if sxx <= 1e-9 * max(1.0, mx * mx):  # all the same length: a pure ratio
            b, a = my / mx if mx else 0.0, 0.0
        else:
            b = sum(wi * (x - mx) * (y - my) for wi, x, y in zip(w, xs, ys, strict=True)) / sxx
            a = my - b * mx
            if a < 0 or b < 0:  # noise can tilt the line; fall back to a ratio through 0
                b, a = my / mx, 0.0
        resid = sum(wi * (y - (a + b * x)) ** 2 for wi, x, y in zip(w, xs, ys, strict=True))
        return a, b, math.sqrt(resid / sw)

    def predict(self, key: Key, audio_s: float) -> Prediction:
        fitted = self.fit(key)
        n = len(self._samples.get(key, ()))
        if fitted is None:
            ratio = PRIOR_SECONDS_PER_AUDIO_SECOND.get(key.device_kind, 1.0)
            seconds = audio_s * ratio
            return Prediction(seconds, seconds * 0.5, n, learned=False)
        a, b, sd = fitted
        return Prediction(max(0.0, a + b * audio_s), sd, n, learned=True)

    def speed(self, key: Key, audio_s: float = 600.0) -> float:
        """Audio seconds per second at a typical chunk length."""
        p = self.predict(key, audio_s)
        return audio_s / p.seconds if p.seconds > 0 else float("inf")
