"""Mining pool benchmark: fixed worker counts vs the adaptive pool against FakeOllama.

For each server capacity P in {1, 4, 8}: FakeOllama serves P requests at once with a
service time of SERVICE_S that grows by OVERLOAD_PENALTY x queued/P when requests queue
beyond capacity, and answers 503 past a queue of P. The same mining requests (official
ollama client, real HTTP on 127.0.0.1, JSON schema format) are sent by the Runtime used in
production with a fixed pool of W workers, then with workers = "auto" (sized from
/api/ps + /api/show, then adapted), and with an adaptive pool that knows nothing (starts at
one). Each case sends ROUNDS x P windows, so every P gets the same number of service rounds
(the daemon runs for days; the pool's ramp takes about 20 rounds). Reported: windows per
minute over the whole run and after warm-up (the first 20 % of windows), p95 latency, 503s
(total and after warm-up). Target: adaptive >= 90 % of the best fixed count per P over the
whole run, no 503 after warm-up.

Run: python -m benchmarks.mining_pool [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from ytpiped import config
from ytpiped.clock import SystemClock
from ytpiped.mining import prompts
from ytpiped.mining.llm import LLMClient, LLMError
from ytpiped.mining.pool import AdaptivePool
from ytpiped.mining.runner import Runtime
from ytpiped.mining.schema import WindowResult, json_schema
from ytpiped.testing.fake_ollama import FakeOllama

SERVICE_S = 0.03
OVERLOAD_PENALTY = 0.3
ROUNDS = 300
TEXT = ("Solar panels convert sunlight into electricity. The price of solar power fell by "
        "ninety percent in ten years. Cheap energy will change how cities are built.")


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.95 * len(s)))] if s else 0.0


async def run_case(parallel: int, windows: int, mode: str, workers: int) -> dict[str, Any]:
    """mode: fixed (W workers), auto (sized from the server, adaptive), blind (start 1)."""
    clock = SystemClock()
    async with FakeOllama(parallel=parallel, latency_s=SERVICE_S, max_queue=parallel,
                          overload_penalty=OVERLOAD_PENALTY) as fake:
        flags: dict[str, Any] = {"data_dir": str(Path("/tmp")), "mine.hosts": [fake.url],
                                 "mine.window_attempts": 6, "mine.retry_base_s": 0.005,
                                 "mine.request_timeout_s": 30.0, "mine.max_workers": 32,
                                 "mine.model_ram_gb": 0.5, "mine.reserved_ram_gb": 0.0}
        if mode == "fixed":
            flags["mine.workers"] = workers
        cfg = config.load(flags=flags).mine
        llm = LLMClient(cfg.hosts, clock, num_ctx=cfg.num_ctx, keep_alive=cfg.keep_alive,
                        timeout_s=cfg.request_timeout_s)
        start = workers if mode == "fixed" else 1
        pool = AdaptivePool(start, 32 if mode != "fixed" else start, clock,
                            adaptive=mode != "fixed")
        rt = Runtime(llm, pool, cfg, clock)
        if mode == "auto":
            await rt.ensure_sized()
        else:
            rt.sized = True
        schema = json_schema(WindowResult)
        lat: list[float] = []
        done = 0
        warm_503: int | None = None
        warm_t = 0.0
        warm_at = max(1, windows // 5)

        async def one(i: int) -> None:
            nonlocal done, warm_503, warm_t
            msgs = prompts.window_messages("bench", "bench", "", f"{TEXT} ({i})", 0.0, 60.0)
            while True:  # as the stage would retry a video whose windows stayed refused
                try:
                    reply = await rt.request(cfg.model, msgs, schema)
                    break
                except LLMError:
                    await asyncio.sleep(0.05)
            lat.append(reply.latency_s)
            done += 1
            if done == warm_at:
                warm_503 = fake.stats.rejected_503
                warm_t = time.perf_counter()

        # a mining stage keeps far more windows ready than workers; the pool gates them
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(windows)))
        t_end = time.perf_counter()
        elapsed = t_end - t0
        await rt.close()
        total_503 = fake.stats.rejected_503
    return {"P": parallel, "mode": mode, "workers": workers if mode == "fixed" else
            f"{pool.history[-1]} ({'>'.join(map(str, pool.history[-6:]))})",
            "windows_per_min": round(60 * windows / elapsed, 1),
            "steady_windows_per_min": round(60 * (windows - warm_at) / (t_end - warm_t), 1),
            "p95_latency_ms": round(1000 * p95(lat), 1), "rejected_503": total_503,
            "rejected_503_after_warmup": total_503 - (warm_503 or 0)}


async def main_async(quick: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"service_s": SERVICE_S, "overload_penalty": OVERLOAD_PENALTY,
                              "rounds": ROUNDS // 2 if quick else ROUNDS, "per_p": {}}
    rows: list[dict[str, Any]] = []
    for parallel in (1, 4, 8):
        windows = (ROUNDS // 2 if quick else ROUNDS) * parallel
        fixed_counts = sorted({max(1, parallel // 2), parallel, parallel + 1, 2 * parallel,
                               3 * parallel})
        fixed = [await run_case(parallel, windows, "fixed", w) for w in fixed_counts]
        auto = await run_case(parallel, windows, "auto", 0)
        blind = await run_case(parallel, windows, "blind", 0)
        rows.extend([*fixed, auto, blind])
        best = max(fixed, key=lambda r: r["windows_per_min"])
        result["per_p"][str(parallel)] = {
            "best_fixed_workers": best["workers"],
            "best_fixed_windows_per_min": best["windows_per_min"],
            "adaptive_windows_per_min": auto["windows_per_min"],
            "adaptive_ratio": round(auto["windows_per_min"] / best["windows_per_min"], 3),
            "adaptive_steady_ratio": round(auto["steady_windows_per_min"] / max(
                r["steady_windows_per_min"] for r in fixed), 3),
            "adaptive_503_after_warmup": auto["rejected_503_after_warmup"],
            "blind_ratio": round(blind["windows_per_min"] / best["windows_per_min"], 3),
            "blind_503_after_warmup": blind["rejected_503_after_warmup"],
            "fixed": {str(r["workers"]): r["windows_per_min"] for r in fixed}}
    print(f"{'P':>2} {'mode':<6} {'workers':<22} {'win/min':>9} {'steady':>9} {'p95 ms':>8} "
          f"{'503':>5} {'503 warm':>8}")
    for r in rows:
        print(f"{r['P']:>2} {r['mode']:<6} {r['workers']!s:<22} {r['windows_per_min']:>9} "
              f"{r['steady_windows_per_min']:>9} {r['p95_latency_ms']:>8} "
              f"{r['rejected_503']:>5} {r['rejected_503_after_warmup']:>8}")
    per_p = result["per_p"].values()
    result["target_met"] = all(v["adaptive_ratio"] >= 0.9 and v["adaptive_503_after_warmup"] == 0
                               for v in per_p)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="half the windows per case")
    args = p.parse_args()
    result = asyncio.run(main_async(args.quick))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
