"""Followed sources: channels, playlists and podcast feeds listed again every
`sources.follow_interval_h` for new entries. Pure.

A followed source is a daemon-state entry `follow:<id>` (every store backend keeps those,
so following needs no schema change): its URL, its own filters, when it was checked,
what the checks found, the last error, and the newest entry URLs seen. A check lists the
newest entries only and stops at the first one already seen; the download stage makes
it between downloads, under the same pacing as a download (ytpiped.stages.download).
Unfollowing writes `None` over the entry. A check is taken through `claim` under the
store's row lock on the entry, so hosts sharing a store never list one source twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PREFIX = "follow:"
SEEN_KEPT = 200  # newest entry URLs remembered per source


@dataclass(frozen=True)
class Follow:
    id: str  # the source's row id: channel:@x, playlist:PL…, url-<hash> for a feed
    url: str
    kind: str  # channel | playlist | generic (a feed)
    added_at: float
    filters: dict[str, Any] = field(default_factory=dict)  # its own filter values
    next_check_at: float = 0.0  # 0: at once
    last_check_at: float | None = None
    checks: int = 0
    found: int = 0  # new entries, all checks together
    added: int = 0  # of those, rows added (the rest were queued already)
    last_found: int = 0
    error: str | None = None
    title: str | None = None
    seen: list[str] = field(default_factory=list)  # newest first

    @property
    def key(self) -> str:
        return PREFIX + self.id

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Follow:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def parse_all(entries: Mapping[str, tuple[Any, float]]) -> list[Follow]:
    """The daemon-state entries under PREFIX -> followed sources (unfollowed ones left out),
    in the order they were added."""
    found = [Follow.from_json(v) for v, _ in entries.values() if isinstance(v, dict)]
    return sorted(found, key=lambda f: (f.added_at, f.id))


def due(follows: Sequence[Follow], now: float) -> Follow | None:
    """The source whose check is most overdue, or None."""
    ready = [f for f in follows if f.next_check_at <= now]
    return min(ready, key=lambda f: f.next_check_at) if ready else None


def claim(value: Any, now: float, lease_s: float) -> tuple[Any, Follow | None]:
    """Take a source's check (run under the store's lock on its entry, so that of several
    hosts sharing a store exactly one lists it): -> (the entry to store, the source to
    check or None). A source still due is leased: its next check moves `lease_s` ahead
    (the check's result replaces that; a host that dies while listing leaves the source
    to be checked again after the lease). One not due (another host took or made its
    check) or unfollowed (None) stays as it is."""
    if not isinstance(value, dict):
        return value, None
    f = Follow.from_json(value)
    if f.next_check_at > now:
        return value, None
    return {**value, "next_check_at": now + lease_s}, f


def new_entries(listed: Sequence[str], seen: Sequence[str]) -> list[str]:
    """Entries listed newest first, up to the first one seen before."""
    known = set(seen)
    out: list[str] = []
    for url in listed:
        if url in known:
            break
        out.append(url)
    return out


def checked(f: Follow, now: float, interval_s: float, *, title: str | None = None,
            new: Sequence[str] = (), added: int = 0, error: str | None = None) -> Follow:
    """The source after one check (failed or not): next check one interval later."""
    seen = list(dict.fromkeys([*new, *f.seen]))[:SEEN_KEPT]
    return dataclasses.replace(
        f, next_check_at=now + interval_s, last_check_at=now, checks=f.checks + 1,
        found=f.found + len(new), added=f.added + added, last_found=len(new), error=error,
        title=title or f.title, seen=seen)
