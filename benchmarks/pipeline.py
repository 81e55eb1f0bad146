"""Whole-pipeline throughput with fake stages of known per-item time.

1. The bottleneck stage alone (its rows already waiting): items/s.
2. All five stages chained through the store (items enter at `queued`): items/s.
   Target: pipeline >= 0.95 x bottleneck standalone.
3. Zero-time stages: scheduler + store overhead per item per stage (target < 1 ms).

Real daemon, real SQLite, real event loop; stage work is `asyncio.sleep`.

    python -m benchmarks.pipeline [--items 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from ytpiped import config, logs
from ytpiped.clock import SystemClock
from ytpiped.daemon import Daemon
from ytpiped.stages.base import Context, Item, Outcome, StageBase
from ytpiped.states import STAGE_NAMES, STAGES
from ytpiped.store import NewVideo, SqliteDB, db_path


class TimedStage(StageBase):
    def __init__(self, name: str, seconds: float, concurrency: int) -> None:
        self.name = name
        self.seconds = seconds
        self.concurrency = concurrency

    async def run(self, item: Item, ctx: Context) -> Outcome:
        if self.seconds:
            await asyncio.sleep(self.seconds)
        return Outcome()


async def _run(data: Path, stages: list[TimedStage], items: int, start_state: str,
               final_state: str) -> float:
    store = SqliteDB(db_path(data), now=0)
    store.add_videos([NewVideo(f"bench{i:06d}", "u", "video") for i in range(items)], now=0)
    if start_state != "queued":
        store.conn.execute("UPDATE videos SET state = ?", (start_state,))
    store.close()
    settings = config.load(flags={"data_dir": str(data), "daemon.poll_interval_s": 1.0})
    done = asyncio.Event()
    last = stages[-1].name
    finished = 0

    def observer(stage: str, event: str, video_id: str, kind: str | None) -> None:
        nonlocal finished
        if event == "completed" and stage == last:
            finished += 1
            if finished == items:
                done.set()

    d = Daemon(settings, clock=SystemClock(), stages=stages, environ={}, on_outcome=observer)
    task = asyncio.create_task(d.serve())
    await d.ready.wait()
    t0 = time.perf_counter()
    await done.wait()
    elapsed = time.perf_counter() - t0
    d.stop.set()
    await task
    check = SqliteDB(db_path(data), readonly=True)
    assert check.counts()[final_state] == items, check.counts()
    check.close()
    return elapsed


def run_case(stages: list[TimedStage], items: int) -> float:
    first = STAGES[stages[0].name].ready.value
    final = STAGES[stages[-1].name].finished.value
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_run(Path(tmp) / "data", stages, items, first, final))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--bottleneck-s", type=float, default=0.02)
    args = ap.parse_args()
    logs.setup(level="warning")
    # per-item seconds and concurrency: transcribe is the bottleneck (4 slots x 20 ms = 200/s)
    plan = {"download": (0.002, 4), "analyze": (0.001, 2), "transcribe": (args.bottleneck_s, 4),
            "mine": (0.004, 8), "evaluate": (0.001, 2)}
    make = [TimedStage(n, *plan[n]) for n in STAGE_NAMES]
    alone = run_case([TimedStage("transcribe", *plan["transcribe"])], args.items)
    whole = run_case(make, args.items)
    zero = run_case([TimedStage(n, 0.0, 1) for n in STAGE_NAMES], args.items)
    alone_rate, whole_rate = args.items / alone, args.items / whole
    overhead_ms = zero / (args.items * len(STAGE_NAMES)) * 1000
    rows = [("bottleneck stage alone (transcribe)", f"{alone_rate:8.1f} items/s"),
            ("whole pipeline, 5 stages", f"{whole_rate:8.1f} items/s"),
            ("pipeline / bottleneck", f"{whole_rate / alone_rate:8.3f}"),
            ("overhead per item per stage", f"{overhead_ms:8.3f} ms")]
    for name, value in rows:
        print(f"{name:<40}{value}")
    print(json.dumps({"items": args.items, "bottleneck_items_per_s": round(alone_rate, 2),
                      "pipeline_items_per_s": round(whole_rate, 2),
                      "pipeline_over_bottleneck": round(whole_rate / alone_rate, 4),
                      "overhead_ms_per_item_stage": round(overhead_ms, 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
