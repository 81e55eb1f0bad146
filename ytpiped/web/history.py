"""The plots' history: one small point per `web.history_interval_s`, taken from the status
the daemon serves, kept in the store's daemon state under one key (so every backend keeps
it, and `ytpiped web` reads it without a daemon). At most a week, and at most
MAX_POINTS points, are kept: its size is bounded whatever the interval."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from ytpiped.clock import Clock
from ytpiped.states import STAGES, TERMINAL, State

KEY = "history"
WEEK_S = 7 * 86400.0
MAX_POINTS = 4032  # a week at one point per 150 s
STATE_ORDER = [s.value for s in State]

Point = dict[str, Any]


def point(st: Mapping[str, Any], now: float) -> Point:
    """The figures of one status dict the plots draw: videos per state, videos each stage
    finished in the last hour, GPU/CPU busy fractions, LLM tokens/s."""
    by_state = st["videos"]["by_state"]
    stages = st.get("stages") or {}
    tr = stages.get("transcribe") or {}
    mine = stages.get("mine") or {}
    return {"at": round(now, 1),
            "n": [int(by_state.get(s, 0)) for s in STATE_ORDER],
            "d": {name: int((stages.get(name) or {}).get("completed_last_hour") or 0)
                  for name in STAGES},
            "gpu": _num(tr.get("busy_fraction_gpu")) if tr.get("gpu_slots") else None,
            "cpu": _num(tr.get("busy_fraction_cpu")) if tr.get("cpu_slots") else None,
            "tok": _num(mine.get("tokens_per_s"))}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def append(points: Sequence[Point], p: Point, *, keep_s: float = WEEK_S,
           max_points: int = MAX_POINTS) -> list[Point]:
    """`points` + `p`, without the points older than `keep_s` before it, and without the
    oldest ones past `max_points`."""
    cut = float(p["at"]) - keep_s
    kept = [q for q in points if isinstance(q, dict) and float(q.get("at", 0)) >= cut]
    kept.append(p)
    return kept[-max_points:]


def series(points: Sequence[Point]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """The plots' lines: plot name -> line name -> [(time, value)]."""
    finished: dict[str, list[tuple[float, float]]] = {name: [] for name in STAGES}
    backlog: dict[str, list[tuple[float, float]]] = {}
    busy: dict[str, list[tuple[float, float]]] = {"gpu": [], "cpu": []}
    tokens: dict[str, list[tuple[float, float]]] = {"tokens/s": []}
    waiting = [s for s in STATE_ORDER if State(s) not in TERMINAL]
    for p in points:
        at = float(p["at"])
        counts = dict(zip(STATE_ORDER, p.get("n") or [], strict=False))
        for name in STAGES:
            finished[name].append((at, float((p.get("d") or {}).get(name, 0))))
        for s in waiting:
            backlog.setdefault(s, []).append((at, float(counts.get(s, 0))))
        for dev in ("gpu", "cpu"):
            if p.get(dev) is not None:
                busy[dev].append((at, float(p[dev])))
        if p.get("tok") is not None:
            tokens["tokens/s"].append((at, float(p["tok"])))
    # a state that never held a video is no line
    backlog = {s: line for s, line in backlog.items() if any(v for _, v in line)}
    return {"finished": finished, "backlog": backlog,
            "busy": {k: v for k, v in busy.items() if v}, "tokens": tokens}


class StateStore(Protocol):
    async def get_state(self, key: str) -> tuple[Any, float] | None: ...
    async def set_state(self, key: str, value: Any, now: float) -> None: ...


async def record(store: StateStore, status: Callable[[], Awaitable[dict[str, Any]]],
                 clock: Clock, interval_s: float, log: Any = None) -> None:
    """The daemon's side task: a point now and every `interval_s` (runs until cancelled).
    A point that cannot be taken is a warning and a gap in the plots, never a stop."""
    found = await store.get_state(KEY)
    points: list[Point] = list(found[0]) if found and isinstance(found[0], list) else []
    while True:
        now = clock.now()
        try:
            points = append(points, point(await status(), now))
            await store.set_state(KEY, points, now)
        except Exception as exc:
            if log is not None:
                log.warning("history_point_failed", error=repr(exc))
        await clock.sleep(interval_s)
