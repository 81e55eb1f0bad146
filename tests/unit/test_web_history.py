"""The plots' history (bounded to a week and MAX_POINTS) and the SVG plots."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ytpiped.states import STAGES, State
from ytpiped.testing.clock import FakeClock
from ytpiped.web import history, plots


def status(queued: int, done: int, busy_gpu: float | None = 0.5) -> dict[str, Any]:
    by_state = {s.value: 0 for s in State}
    by_state.update(queued=queued, done=done)
    return {"videos": {"by_state": by_state},
            "stages": {"download": {"completed_last_hour": done},
                       "transcribe": {"gpu_slots": 1 if busy_gpu is not None else 0,
                                      "cpu_slots": 2, "busy_fraction_gpu": busy_gpu,
                                      "busy_fraction_cpu": 0.25},
                       "mine": {"tokens_per_s": 42.5}}}


def test_a_point_keeps_counts_rates_busy_fractions_and_tokens() -> None:
    p = history.point(status(7, 3), 1000.0)
    assert p["n"][history.STATE_ORDER.index("queued")] == 7
    assert p["d"] == {"download": 3, **{s: 0 for s in STAGES if s != "download"}}
    assert (p["gpu"], p["cpu"], p["tok"]) == (0.5, 0.25, 42.5)
    assert history.point(status(1, 1, busy_gpu=None), 0)["gpu"] is None  # no GPU slot


def test_history_keeps_a_week_and_at_most_max_points() -> None:
    points: list[history.Point] = []
    for i in range(100):
        points = history.append(points, {"at": i * 3600.0}, keep_s=history.WEEK_S)
    assert len(points) == 100  # 99 hours: all within the week
    week = history.append(points, {"at": 99 * 3600.0 + history.WEEK_S})
    assert [p["at"] for p in week] == [99 * 3600.0, 99 * 3600.0 + history.WEEK_S]
    capped: list[history.Point] = []
    for i in range(50):
        capped = history.append(capped, {"at": float(i)}, max_points=10)
    assert [p["at"] for p in capped] == [float(i) for i in range(40, 50)]


def test_series_draws_only_states_that_held_videos() -> None:
    pts = [history.point(status(5, 0), 0.0), history.point(status(2, 3), 60.0)]
    lines = history.series(pts)
    assert lines["backlog"] == {"queued": [(0.0, 5.0), (60.0, 2.0)]}
    assert lines["finished"]["download"] == [(0.0, 0.0), (60.0, 3.0)]
    assert lines["busy"]["cpu"] == [(0.0, 0.25), (60.0, 0.25)]
    assert lines["tokens"]["tokens/s"][-1] == (60.0, 42.5)


def test_plot_has_one_polyline_per_line_with_its_points() -> None:
    svg = plots.line_plot({"queued": [(0.0, 5.0), (60.0, 2.0), (120.0, 0.0)],
                           "<b>": [(0.0, 1.0)]}, "backlog", plot_id="p")
    lines = re.findall(r'<polyline [^>]*data-series="([^"]*)" data-points="(\d+)"', svg)
    assert lines == [("queued", "3"), ("&lt;b&gt;", "1")]
    coords = re.search(r'data-series="queued"[^>]*points="([^"]+)"', svg)
    assert coords and len(coords.group(1).split()) == 3
    ys = [float(c.split(",")[1]) for c in coords.group(1).split()]
    assert ys[0] < ys[1] < ys[2]  # 5 is drawn highest, 0 on the axis
    assert "no history yet" in plots.line_plot({"a": []}, "empty")


async def test_record_writes_a_point_now_and_every_interval() -> None:
    class States:
        def __init__(self) -> None:
            self.values: dict[str, Any] = {history.KEY: ([{"at": 1.0}], 1.0)}
            self.writes = 0

        async def get_state(self, key: str) -> tuple[Any, float] | None:
            return self.values.get(key)

        async def set_state(self, key: str, value: Any, now: float) -> None:
            self.values[key] = (value, now)
            self.writes += 1

    clock = FakeClock(start=10_000.0)
    store = States()

    async def st() -> dict[str, Any]:
        return status(1, 0)

    task = asyncio.create_task(history.record(store, st, clock, 60.0))
    while store.writes < 3:
        await asyncio.sleep(0)
        if clock.next_deadline() is not None:
            clock.advance(60.0)
    task.cancel()
    points = store.values[history.KEY][0]
    assert [p["at"] for p in points][:3] == [1.0, 10_000.0, 10_060.0]
