"""Waiting in tests for a condition that another task or a thread makes true."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(cond: Callable[[], bool], what: str = "condition", *,
                task: asyncio.Future[Any] | None = None, timeout: float = 60.0) -> None:
    """Poll `cond` until it holds. With `task` (the daemon, a stage's work), the wait ends
    as soon as that task ends first, with its error. Fails after `timeout` seconds, naming
    `what` it waited for."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                if task is None:
                    await asyncio.sleep(0.005)
                    continue
                assert not task.done(), f"ended before {what}: {task.result()!r}"
                await asyncio.wait({task}, timeout=0.02)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout:g} s") from None
