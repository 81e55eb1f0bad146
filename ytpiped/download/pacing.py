"""Download pacing: phases, randomized delays, the hourly budget, cooldowns. Pure.

Phases (DESIGN.md §3): `buffer_build` until `buffer_target` videos wait for transcription
(short delays), then `steady` (long delays), `catch_up` when fewer than `low_water` wait,
`full` (no downloads) at `high_water`, over `max_buffer_bytes` or when the disk is low,
`cooldown` after a rate limit or bot check, `idle` when nothing is queued. Delays are
counted from the end of the previous download; a sliding one-hour window caps
downloads at `max_videos_per_hour` whatever the phase.

Hosts in one pacing group (download.pacing_group) share everything but the buffer: the
group's state (`shared()`) lives in the store and every host takes its download turn
(`turn`) under the store's lock on it: the gate has applied the group's state as it was
then, the turn applies what other hosts did since (a download started or ended, a
cooldown), so the delays hold between downloads of different hosts too. Downloads in
flight count against the group's concurrency; one whose host died stops counting after
`STALE_INFLIGHT_S`.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from ytpiped.config import DownloadConfig
from ytpiped.retry import doubling_s

HOUR = 3600.0
STALE_INFLIGHT_S = 2 * HOUR  # a download in flight this long belongs to a dead host


@dataclass(frozen=True)
class Buffer:
    queued: int  # rows waiting to be downloaded
    waiting: int  # downloaded videos not yet transcribed
    bytes: int
    free_disk: int


@dataclass
class Pacer:
    cfg: DownloadConfig
    rng: random.Random = field(default_factory=random.Random)
    built: bool = False  # the buffer reached buffer_target once
    last_end: float | None = None
    draw: float = 0.0  # where in the phase's delay range the next pause falls
    recent: deque[float] = field(default_factory=deque)  # download start times, last hour
    cooldown_until: float = 0.0
    cooldown_level: int = 0
    cooldown_kind: str | None = None
    inflight: dict[str, float] = field(default_factory=dict)  # holder -> download start
    last_by: str = ""  # the host whose download ended last (in a pacing group)
    cooldown_by: str = ""  # the host that met the rate limit

    def phase(self, now: float, buf: Buffer) -> str:
        """The pacing phase for this buffer (pure: `next_at` records a built buffer)."""
        c = self.cfg
        if now < self.cooldown_until:
            return "cooldown"
        if self.full(buf):
            return "full"
        if buf.queued == 0:
            return "idle"
        if not (self.built or buf.waiting >= c.buffer_target):
            return "buffer_build"
        return "catch_up" if buf.waiting < c.low_water else "steady"

    def full(self, buf: Buffer) -> bool:
        """The buffer of untranscribed audio is full (or the disk low): no download from
        any host."""
        c = self.cfg
        return (buf.waiting >= c.high_water or buf.bytes >= c.max_buffer_bytes
                or buf.free_disk < c.min_free_disk_bytes)

    def delay_range(self, phase: str) -> tuple[float, float]:
        c = self.cfg
        return {"buffer_build": c.delay_buffer_build_s, "catch_up": c.delay_catch_up_s}.get(
            phase, c.delay_steady_s)

    def budget_at(self, now: float) -> float:
        """Earliest time the hourly budget allows another download."""
        while self.recent and self.recent[0] <= now - HOUR:
            self.recent.popleft()
        if len(self.recent) < self.cfg.max_videos_per_hour:
            return now
        return self.recent[len(self.recent) - self.cfg.max_videos_per_hour] + HOUR

    def next_at(self, now: float, buf: Buffer) -> tuple[str, float | None]:
        """(phase, when the next download may start); None while full or idle."""
        phase = self.phase(now, buf)
        if buf.waiting >= self.cfg.buffer_target:
            self.built = True  # once built, a low buffer means catching up, not rebuilding
        if phase in ("full", "idle"):
            return phase, None
        at = self.budget_at(now)
        if phase == "cooldown":
            at = max(at, self.cooldown_until)
        if self.last_end is not None:
            lo, hi = self.delay_range(phase if phase != "cooldown" else "steady")
            at = max(at, self.last_end + lo + self.draw * (hi - lo))
        return phase, at

    def listing_at(self, now: float) -> float:
        """When a followed source may be listed: like a download in the steady phase (the
        hourly budget, a cooldown, the pause after the last request), also while idle."""
        at = max(self.budget_at(now), self.cooldown_until)
        if self.last_end is not None:
            lo, hi = self.cfg.delay_steady_s
            at = max(at, self.last_end + lo + self.draw * (hi - lo))
        return at

    def started(self, now: float, holder: str = "") -> None:
        self.recent.append(now)
        self.inflight[holder] = now

    def turn(self, now: float, buf: Buffer, holder: str, limit: int) -> float | None:
        """Start `holder`'s download now unless another host of the group started one, or
        ended one or met a rate limit too recently, since this host's gate let it through
        (-> None); else -> when to ask again."""
        me = host_of(holder)
        for who, since in list(self.inflight.items()):
            if since < now - STALE_INFLIGHT_S:
                del self.inflight[who]
        if len(self.inflight) >= limit:  # another download runs: its end decides
            return now + 1.0
        at = self.budget_at(now)
        if self.cooldown_until > now and self.cooldown_by != me:
            at = max(at, self.cooldown_until)
        if self.last_end is not None and self.last_by != me:
            lo, hi = self.delay_range(self.phase(now, replace(buf, queued=max(1, buf.queued))))
            at = max(at, self.last_end + lo + self.draw * (hi - lo))
        if at > now:
            return at
        self.started(now, holder)
        return None

    def forget(self, prefix: str) -> None:
        """Drop downloads in flight of holders starting with `prefix` (a restarted host's)."""
        self.inflight = {k: v for k, v in self.inflight.items() if not k.startswith(prefix)}

    def shared(self) -> dict[str, Any]:
        """The state a pacing group shares (JSON)."""
        return {"last_end": self.last_end, "last_by": self.last_by, "cooldown_by":
                self.cooldown_by, "draw": self.draw, "recent": list(self.recent),
                "cooldown_until": self.cooldown_until, "cooldown_level": self.cooldown_level,
                "cooldown_kind": self.cooldown_kind, "inflight": dict(self.inflight)}

    def take_shared(self, data: Any) -> None:
        """Adopt the group's state (None: nothing stored yet, keep this host's own)."""
        if not isinstance(data, dict):
            return
        last = data.get("last_end")
        self.last_end = float(last) if isinstance(last, int | float) else None
        self.draw = float(data.get("draw") or 0.0)
        self.last_by = str(data.get("last_by") or "")
        self.cooldown_by = str(data.get("cooldown_by") or "")
        self.recent = deque(float(t) for t in data.get("recent") or [])
        self.cooldown_until = float(data.get("cooldown_until") or 0.0)
        self.cooldown_level = int(data.get("cooldown_level") or 0)
        kind = data.get("cooldown_kind")
        self.cooldown_kind = str(kind) if kind is not None else None
        self.inflight = {str(k): float(v) for k, v in (data.get("inflight") or {}).items()}

    def finished(self, now: float, ok: bool, holder: str = "") -> None:
        self.inflight.pop(holder, None)
        self.last_end = now
        self.last_by = host_of(holder)
        self.draw = self.rng.random()
        if ok:
            self.cooldown_level = 0
            self.cooldown_kind = None

    def enter_cooldown(self, now: float, kind: str, holder: str = "") -> float:
        """A rate-limit signal: pause everything; doubles on repeat up to the cap."""
        c = self.cfg
        span = doubling_s(self.cooldown_level, c.rate_limit_cooldown_s, c.max_cooldown_s)
        self.cooldown_level += 1
        self.cooldown_kind = kind
        self.cooldown_by = host_of(holder)
        self.cooldown_until = max(self.cooldown_until, now + span)
        return self.cooldown_until

    def rate_per_hour(self, now: float) -> float:
        self.budget_at(now)
        return float(len(self.recent))


def host_of(holder: str) -> str:
    """A download's holder "HOST:PID/VIDEO" -> "HOST"."""
    return holder.rsplit("/", 1)[0].rsplit(":", 1)[0]


@dataclass
class OtherHosts:
    """The gentle pacing of hosts that are not YouTube (a podcast feed's episodes), one per
    host name: a randomized pause of `download.other_hosts_delay_s` after the previous
    download from that host, and no two downloads from it at once. YouTube's phases, hourly
    budget, cooldowns and breaker do not apply to them, nor they to YouTube."""

    cfg: DownloadConfig
    rng: random.Random = field(default_factory=random.Random)
    last_end: dict[str, float] = field(default_factory=dict)  # host -> end of its last
    draw: dict[str, float] = field(default_factory=dict)  # host -> where its next pause falls
    busy: set[str] = field(default_factory=set)  # hosts with a download running

    def next_at(self, now: float, host: str) -> float:
        """When the next download from `host` may start (now + 1 s while one runs)."""
        if host in self.busy:
            return now + 1.0
        if host not in self.last_end:
            return now
        lo, hi = self.cfg.other_hosts_delay_s
        return max(now, self.last_end[host] + lo + self.draw.get(host, 0.0) * (hi - lo))

    def started(self, now: float, host: str) -> None:
        self.busy.add(host)

    def finished(self, now: float, host: str) -> None:
        self.busy.discard(host)
        self.last_end[host] = now
        self.draw[host] = self.rng.random()


def url_host(url: str) -> str:
    """The host name a URL's requests go to (the key of its OtherHosts pacing)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
