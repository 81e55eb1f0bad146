"""Pure retry decisions: capped, jittered exponential backoff with an injected RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryAt:
    at: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


def doubling_s(level: int, base_s: float, cap_s: float) -> float:
    """The one backoff of ytpiped: base, 2 x base, 4 x base ... for level 0, 1, 2 ...,
    never above `cap_s` (retries, download cooldowns, LLM pauses, breaker probes)."""
    return float(min(cap_s, base_s * 2.0 ** max(0, level)))


def backoff_s(attempt: int, rng: random.Random, *, base_s: float = 30.0,
              cap_s: float = 3600.0) -> float:
    """Delay before attempt `attempt + 1` (attempt counts from 1): jitter between half and
    all of doubling_s(attempt - 1)."""
    return doubling_s(attempt - 1, base_s, cap_s) * (0.5 + 0.5 * rng.random())


def decide(attempts_done: int, max_attempts: int, now: float, rng: random.Random, *,
           defer_s: float | None = None, base_s: float = 30.0,
           cap_s: float = 3600.0) -> RetryAt | GiveUp:
    """After `attempts_done` failed attempts (this one included): retry when, or give up."""
    if attempts_done >= max_attempts:
        return GiveUp(f"gave up after {attempts_done} attempts")
    delay = defer_s if defer_s is not None else backoff_s(attempts_done, rng, base_s=base_s,
                                                           cap_s=cap_s)
    return RetryAt(now + max(0.0, delay))
