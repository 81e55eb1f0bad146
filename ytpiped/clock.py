"""Time as a dependency: everything that needs 'now' or a pause gets a Clock."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time in seconds since the epoch (what is persisted)."""

    def monotonic(self) -> float:
        """Monotonic seconds, for measuring durations."""

    async def sleep(self, seconds: float) -> None:
        """Pause for `seconds` (never negative)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
