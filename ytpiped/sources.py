"""`ytpiped add --follow`, `follows` and `unfollow`: followed sources in the store's
daemon state (ytpiped.download.follows), written by the CLI, checked by the daemon."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ytpiped.download import filters as flt
from ytpiped.download import follows as fl
from ytpiped.errors import UsageError
from ytpiped.urls import Invalid, Target, canonicalise

FOLLOWABLE = ("channel", "playlist", "generic")


class StateStore(Protocol):
    def get_state(self, key: str) -> tuple[Any, float] | None: ...

    def set_state(self, key: str, value: Any, now: float) -> None: ...

    def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]: ...


def parse_filters(pairs: Sequence[str]) -> dict[str, Any]:
    """`--filter KEY=VALUE` values -> typed filter values (UsageError names the bad one)."""
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--filter {pair!r}: expected KEY=VALUE, e.g. min_duration_s=120 "
                             f"(keys: {', '.join(flt.KEYS)})")
        raw[key.strip()] = value.strip()
    try:
        return flt.parse(raw)
    except ValueError as exc:
        raise UsageError(f"--filter: {exc}") from None


def target_of(url: str) -> Target:
    got = canonicalise(url)
    if got is None or isinstance(got, Invalid):
        why = got.reason if isinstance(got, Invalid) else "empty"
        raise UsageError(f"cannot follow {url!r}: {why}")
    if got.kind not in FOLLOWABLE:
        raise UsageError(f"cannot follow {url!r}: it is a single video; follow a channel, a "
                         "playlist or a podcast feed")
    return got


def follow(store: StateStore, urls: Sequence[str], filters: Mapping[str, Any],
           now: float) -> tuple[int, int]:
    """Follow each URL (its filters replaced when followed already) -> (new, updated)."""
    new = updated = 0
    for url in urls:
        target = target_of(url)
        key = fl.PREFIX + target.id
        got = store.get_state(key)
        if got is not None and isinstance(got[0], dict):
            old = fl.Follow.from_json(got[0])
            store.set_state(key, {**old.to_json(), "filters": dict(filters)}, now)
            updated += 1
        else:
            made = fl.Follow(id=target.id, url=target.url, kind=target.kind, added_at=now,
                             filters=dict(filters))
            store.set_state(key, made.to_json(), now)
            new += 1
    return new, updated


def unfollow(store: StateStore, url: str, now: float) -> bool:
    """Stop following `url` (its videos stay) -> whether it was followed."""
    target = canonicalise(url)
    key = fl.PREFIX + (target.id if isinstance(target, Target) else url)
    got = store.get_state(key)
    if got is None or got[0] is None:
        return False
    store.set_state(key, None, now)
    return True


def listing(store: StateStore) -> list[fl.Follow]:
    return fl.parse_all(store.all_state(fl.PREFIX))


def to_json(f: fl.Follow) -> dict[str, Any]:
    data = f.to_json()
    data.pop("seen")
    return data
