"""The download circuit breaker. Pure: it takes outcomes and `now`, returns decisions.

YouTube breaks yt-dlp every few weeks, a JavaScript runtime goes missing, a PO token
stops working: then every video fails, one attempt at a time, until the whole queue is
`failed`. The breaker notices instead. When the last `threshold` downloads, on as many
different videos, all failed with kinds that are not the video's own fault
(classify.feeds_breaker), it opens: downloads pause, the attempts those failures spent
are to be given back, and after `cooldown_s` (doubling on every failed probe, up to
`max_cooldown_s`) one probe download decides: a success closes it, another such failure
opens it again. A success, or a failure that is the video's own, ends a run of failures.
An operator's `ytpiped resume download` closes it at once; `pause download` holds every
download until `resume`. The state is JSON (published with the stage status) and so
survives a restart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ytpiped.retry import doubling_s

CLOSED, OPEN, PROBING, HELD = "closed", "open", "probing", "held"


@dataclass
class Failure:
    kind: str
    error: str
    spent: int  # attempts these failures spent (to give back when the breaker opens)


@dataclass
class Breaker:
    threshold: int
    cooldown_s: float
    max_cooldown_s: float
    state: str = CLOSED
    failures: dict[str, Failure] = field(default_factory=dict)  # video id -> its run, in order
    level: int = 0  # failed probes since it opened
    opened_at: float | None = None
    probe_at: float | None = None
    kind: str | None = None  # the common error kind that opened it
    error: str | None = None  # yt-dlp's first line of the last such failure
    held: bool = False  # `ytpiped pause download`
    request_at: float = 0.0  # time of the last operator request applied

    # ------------------------------------------------------------------ decisions

    def blocks(self, now: float, busy: bool) -> bool:
        """True while no download may start: held, open, or probing while a download (the
        probe) is still running (`busy`)."""
        if self.held:
            return True
        if self.state == OPEN and self.probe_at is not None and now >= self.probe_at:
            self.state = PROBING
        if self.state == OPEN:
            return True
        return self.state == PROBING and busy

    def succeeded(self) -> bool:
        """A download succeeded; True when that closed the breaker."""
        was = self.state
        self.failures.clear()
        if was == CLOSED:
            return False
        self._close()
        return True

    def neutral(self, own_fault: bool) -> None:
        """A failure that says nothing about downloading as a whole: the video's own fault
        (ends a run of failures) or a cooldown (rate limit, bot check, upcoming: changes
        nothing). A probe that ended so leaves the next download to probe."""
        if own_fault:
            self.failures.clear()

    def failed(self, video_id: str, kind: str, error: str, now: float) -> str | None:
        """A download failed in a way that is not the video's fault. Returns "opened" (now,
        by this failure), "reopened" (the probe failed: the pause doubles), "open" (it was
        open already): in all three the video is held until the probe without spending
        an attempt. None: the failure spends an attempt, counted to be given back should
        the breaker open later."""
        if self.threshold <= 0:
            return None
        run = self.failures.pop(video_id, None)
        self.failures[video_id] = Failure(kind, error, run.spent if run else 0)
        self.error = error
        if self.state == PROBING:
            self.level += 1
            self._open(now)
            return "reopened"
        if self.state == CLOSED and len(self.failures) >= self.threshold:
            self.level = 0
            self._open(now)
            return "opened"
        if self.state == OPEN:
            return "open"
        self.failures[video_id].spent += 1
        return None

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.opened_at = now if self.opened_at is None else self.opened_at
        self.kind = self.common_kind()
        self.probe_at = now + doubling_s(self.level, self.cooldown_s, self.max_cooldown_s)

    def _close(self) -> None:
        self.state, self.level = CLOSED, 0
        self.opened_at = self.probe_at = self.kind = self.error = None
        self.failures.clear()

    def common_kind(self) -> str | None:
        counts = Counter(f.kind for f in self.failures.values())
        return counts.most_common(1)[0][0] if counts else None

    def to_give_back(self) -> dict[str, int]:
        """Video id -> attempts its failures in this run spent; forgotten once asked for
        (each attempt is given back once)."""
        out = {vid: f.spent for vid, f in self.failures.items() if f.spent}
        for f in self.failures.values():
            f.spent = 0
        return out

    def kinds(self) -> list[str]:
        return sorted({f.kind for f in self.failures.values()})

    # ------------------------------------------------------------------ operator

    def request(self, action: str, at: float) -> str | None:
        """Apply `ytpiped pause|resume download` made at `at` (once); returns what changed:
        "held", "resumed" (closed an open breaker, or released a hold) or None."""
        if at <= self.request_at:
            return None
        self.request_at = at
        if action == "pause":
            self.held = True
            return "held"
        if action == "resume":
            was_open = self.state != CLOSED or self.held
            self.held = False
            self._close()
            return "resumed" if was_open else None
        return None

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {"state": HELD if self.held else self.state, "open_state": self.state,
                "held": self.held, "level": self.level, "opened_at": self.opened_at,
                "probe_at": self.probe_at, "kind": self.kind, "error": self.error,
                "threshold": self.threshold, "failures_in_row": len(self.failures),
                "failures": {vid: [f.kind, f.error, f.spent]
                             for vid, f in self.failures.items()},
                "request_at": self.request_at}

    def restore(self, data: Any) -> None:
        """Take over the state a previous daemon published (a probe it had in flight died
        with it: the next download probes again)."""
        if not isinstance(data, dict):
            return
        state = data.get("open_state")
        if state in (CLOSED, OPEN, PROBING):
            self.state = state
        self.held = bool(data.get("held", False))
        self.level = int(data.get("level") or 0)
        for key in ("opened_at", "probe_at"):
            value = data.get(key)
            setattr(self, key, float(value) if isinstance(value, int | float) else None)
        self.kind, self.error = data.get("kind"), data.get("error")
        self.request_at = float(data.get("request_at") or 0.0)
        self.failures = {str(vid): Failure(str(f[0]), str(f[1]), int(f[2]))
                         for vid, f in (data.get("failures") or {}).items()
                         if isinstance(f, list) and len(f) == 3}
