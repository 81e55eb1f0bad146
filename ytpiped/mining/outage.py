"""The stage-wide LLM pause, shared by the mine and evaluate stages.

A server that is busy (503), overloaded (no answer within `request_timeout_s`, which is
also how a model that is still loading looks), unreachable, restarting (500, dropped
connections) or missing the model is nobody's fault among the videos. So when requests keep
failing that way, `Outage.trip` pauses all LLM work: the stages' gates stop claiming until
the pause ends, the videos in flight go back without spending an attempt, and the pause
doubles (`base_s`, 2 x, 4 x ... up to `cap_s`) each time the first request after it fails
too. The first answer resets it. Only a video's own problems (invalid output after repair,
a prompt longer than the context) spend attempts.

State changes are returned to the caller (which logs them once) and counted in `version`,
so a stage publishes its status once per change rather than once per request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from ytpiped.clock import Clock
from ytpiped.mining.llm_kinds import (
    KIND_BAD_RESPONSE,
    KIND_BUSY,
    KIND_DISCONNECTED,
    KIND_MODEL_MISSING,
    KIND_SERVER_ERROR,
    KIND_TIMEOUT,
    KIND_UNAUTHORIZED,
    KIND_UNAVAILABLE,
)
from ytpiped.retry import doubling_s

#: failures that say something about the server, not about the video being mined
SERVER_KINDS = frozenset({KIND_UNAVAILABLE, KIND_BUSY, KIND_TIMEOUT, KIND_DISCONNECTED,
                          KIND_SERVER_ERROR, KIND_BAD_RESPONSE, KIND_MODEL_MISSING,
                          KIND_UNAUTHORIZED})

WHAT = {KIND_UNAVAILABLE: "unreachable", KIND_BUSY: "busy (HTTP 503)",
        KIND_TIMEOUT: "not answering within mine.request_timeout_s (overloaded or loading "
                      "the model)",
        KIND_DISCONNECTED: "dropping connections", KIND_SERVER_ERROR: "failing (HTTP 5xx)",
        KIND_BAD_RESPONSE: "answering with something that is not JSON",
        KIND_MODEL_MISSING: "missing the model (ollama pull it, or check mine.model against "
                            "the server's /v1/models)",
        KIND_UNAUTHORIZED: "refusing the request (HTTP 401/403: credentials, or a proxy)"}


def server_name(apis: list[str]) -> str:
    """How messages name the servers: "Ollama" when every host speaks its API."""
    return "Ollama" if apis == ["ollama"] else "The LLM server"


ALERT_ERROR_MAX = 200  # characters of the last error the alert line quotes


def pause_s(level: int, base_s: float, cap_s: float) -> float:
    """Length of the `level`-th pause in a row: base, 2 x base, 4 x base ... capped."""
    return doubling_s(level - 1, base_s, cap_s)


@dataclass(frozen=True)
class Tripped:
    """A pause began (level 1) or, after a failed first try, grew (level 2, 3 ...)."""

    kind: str
    level: int
    until: float
    wait_s: float


class Outage:
    def __init__(self, base_s: float, cap_s: float, server: str = "Ollama") -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.server = server  # what the alert calls it
        self.level = 0  # pauses in a row without an answer in between; 0: all well
        self.kind: str | None = None
        self.error = ""
        self.since: float | None = None
        self.until = 0.0  # epoch seconds (clock.now())
        self.version = 0  # bumped on every change of state
        self._changed = asyncio.Event()

    def active(self, now: float) -> bool:
        return now < self.until

    def trip(self, kind: str, error: str, now: float) -> Tripped | None:
        """A request failed for a server reason. While a pause runs, further failures
        (requests that were already in flight) join it; otherwise the next, doubled pause
        starts and is returned."""
        if self.active(now):
            return None
        self.level += 1
        wait = pause_s(self.level, self.base_s, self.cap_s)
        self.kind, self.error, self.until = kind, error, now + wait
        if self.since is None:
            self.since = now
        self._bump()
        return Tripped(kind, self.level, self.until, wait)

    def recover(self, now: float) -> float | None:
        """A request was answered: the pause ends at once. Returns how long the server was
        out (None when it was not)."""
        if self.level == 0:
            return None
        out = now - (self.since if self.since is not None else now)
        self.level, self.kind, self.error, self.since, self.until = 0, None, "", None, 0.0
        self._bump()
        return out

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, clock: Clock) -> None:
        """Return when no pause runs (at its end, or at once when an answer ends it)."""
        while self.active(clock.now()):
            changed = asyncio.ensure_future(self._changed.wait())
            timer = asyncio.ensure_future(clock.sleep(self.until - clock.now()))
            try:
                await asyncio.wait({changed, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                timer.cancel()

    def status(self, now: float) -> dict[str, Any]:
        """The part of the mine/evaluate status that `ytpiped status` shows."""
        on = self.active(now)
        return {"llm": "cooldown" if on else ("probing" if self.level else "ok"),
                "cooldown_kind": self.kind if self.level else None,
                "cooldown_until": self.until if on else None,
                "cooldown_level": self.level,
                "cooldown_error": self.error or None}

    def alert(self, now: float) -> str | None:
        """One line for `status` while a pause runs."""
        if not self.active(now) or self.kind is None:
            return None
        at = dt.datetime.fromtimestamp(self.until).strftime("%H:%M:%S")
        return (f"{self.server} is {WHAT.get(self.kind, self.kind)} ({self.kind}): mining and "
                f"evaluation paused until {at} (pause {self.level}, doubling up to "
                f"{self.cap_s:.0f} s); no video loses an attempt. Last error: "
                f"{self.error[:ALERT_ERROR_MAX]}")
