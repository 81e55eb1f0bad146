"""Pure handling of mined claims: timestamps from quotes, merging windows, deduplication."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ytpiped.mining.quotes import locate_quote, normalise, words
from ytpiped.mining.schema import WindowResult
from ytpiped.mining.windows import Window


def place_claims(result: WindowResult, window: Window) -> dict[str, Any]:
    """A window's validated answer -> stored part data, each claim with start/end found by
    locating its evidence in the window's segments (None when the quote is not there)."""
    claims = []
    for c in result.claims:
        span = locate_quote(c.evidence, window.segments)
        claims.append({**c.model_dump(), "window": window.idx,
                       "start": span.start if span else None,
                       "end": span.end if span else None,
                       "quote_found": "exact" if span and span.exact else
                                      "approximate" if span else "no"})
    return {"claims": claims,
            "people": [p.model_dump() for p in result.people],
            "concepts": [c.model_dump() for c in result.concepts]}


def _similar(a: set[str], b: set[str], threshold: float) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= threshold


def is_duplicate(a: Mapping[str, Any], b: Mapping[str, Any], threshold: float = 0.8) -> bool:
    """Same claim said once but mined twice (from two overlapping windows)?"""
    ea, eb = normalise(str(a.get("evidence", ""))), normalise(str(b.get("evidence", "")))
    if ea and eb and (ea in eb or eb in ea):
        return True
    return _similar(set(words(str(a.get("text", "")))), set(words(str(b.get("text", "")))),
                    threshold)


def dedup_claims(claims: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep one claim per duplicate group (the most confident; first on a tie), in time
    order; `windows` lists every window that produced it."""
    kept: list[dict[str, Any]] = []
    for c in claims:
        c = dict(c)
        c.setdefault("windows", [c.get("window")] if c.get("window") is not None else [])
        for i, k in enumerate(kept):
            if is_duplicate(k, c):
                wins = sorted({*k["windows"], *c["windows"]})
                better = c if float(c.get("confidence", 0)) > float(k.get("confidence", 0)) else k
                kept[i] = {**better, "windows": wins}
                break
        else:
            kept.append(c)
    return sorted(kept, key=lambda c: (c.get("start") is None, c.get("start") or 0.0))


def _dedup_named(items: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for it in items:
        name = normalise(str(it.get(key, "")))
        if name and name not in seen:
            seen[name] = dict(it)
    return list(seen.values())


def merge_windows(parts: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Stored window parts -> one video's claims/people/concepts + failed windows."""
    claims: list[Mapping[str, Any]] = []
    people: list[Mapping[str, Any]] = []
    concepts: list[Mapping[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for idx in sorted(parts):
        p = parts[idx]
        if p.get("status") != "ok":
            failed.append({"window": idx, "error": p.get("error"), "raw": p.get("raw")})
            continue
        claims.extend(p.get("claims", []))
        people.extend(p.get("people", []))
        concepts.extend(p.get("concepts", []))
    return {"claims": dedup_claims(claims), "people": _dedup_named(people, "name"),
            "concepts": _dedup_named(concepts, "term"), "failed_windows": failed}
