"""Blocking work that stops when its caller is cancelled.

`asyncio.to_thread` cannot stop a thread: a cancelled download or analysis would run on
to its end, and the process (which joins its threads on exit) would outlive
`daemon.shutdown_grace_s` by that much. Work run through `in_thread` gets a
`threading.Event` that is set when the awaiting task is cancelled; the work checks it at
its natural steps (yt-dlp's progress reports, each decoded block) and raises `Aborted`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ytpiped.errors import YtpipedError

T = TypeVar("T")


class Aborted(YtpipedError):
    """Blocking work stopped because the task waiting for it was cancelled."""


def check(abort: threading.Event | None) -> None:
    if abort is not None and abort.is_set():
        raise Aborted("stopped: the work was cancelled (shutdown or a lost lease)")


async def in_thread(fn: Callable[..., T], *args: Any, abort: threading.Event | None = None,
                    **kwargs: Any) -> T:
    """`await asyncio.to_thread(fn, *args, abort=abort, **kwargs)`, setting `abort` (a new
    Event unless given) when the caller is cancelled."""
    event = abort or threading.Event()
    try:
        return await asyncio.to_thread(fn, *args, abort=event, **kwargs)
    except asyncio.CancelledError:
        event.set()
        raise
