"""FakeClock: virtual time for tests, simulations and benchmarks."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any


class FakeClock:
    """A Clock whose time moves only when told to (or, with `autojump`, when every
    sleeper is waiting). `now()` = `start` + elapsed virtual seconds."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = 0.0
        self._start = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._start + self._t

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has passed."""
        target = self._t + max(0.0, seconds)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._t = max(self._t, deadline)
            if not fut.done():
                fut.set_result(None)
        self._t = target

    def next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def drive(self, task: asyncio.Future[Any], max_steps: int = 1_000_000, *,
                    until: Callable[[], bool] | None = None) -> None:
        """Run `task` to completion (or until `until()` holds), jumping virtual time whenever
        everything waits on the clock; real waits (threads, sockets) are awaited on the
        task itself."""
        for _ in range(max_steps):
            if task.done() or (until is not None and until()):
                return
            for _ in range(5):
                await asyncio.sleep(0)
            deadline = self.next_deadline()
            if deadline is None:
                await asyncio.wait({task}, timeout=0.01)
            else:
                self.advance(deadline - self._t)
        raise RuntimeError("FakeClock.drive: too many steps")

    async def run_until_idle(self, max_steps: int = 1_000_000) -> None:
        """Jump from deadline to deadline until nobody sleeps (lets ready tasks run between)."""
        for _ in range(max_steps):
            for _ in range(5):
                await asyncio.sleep(0)
            deadline = self.next_deadline()
            if deadline is None:
                return
            self.advance(deadline - self._t)
        raise RuntimeError("FakeClock.run_until_idle: too many steps")
