"""Mining against a real OpenAI-compatible server: llama-cpp-python's `llama_cpp.server`
with SmolLM2-135M (ytpiped.testing.llama_server), on this machine's CPU.

1. Prefix reuse. The windows of one video are sent one after another, as production lays
   them out (the part all windows share first: instructions, title, channel, summary; the
   window last) and, for comparison, with the window first and the shared part after it.
   Each request asks for one answer token, so its time is prompt processing. Reported:
   the mean time of windows 2..n over window 1's (window 1 follows another video's
   request, so only the instructions can be reused for it), per layout, median over
   ROUNDS rounds. The server keeps the KV cache of the previous prompt and reuses the
   longest common prefix, so with the shared part first windows 2..n process only their
   own text.
2. Adaptive pool vs fixed worker counts 1..6: the same WINDOWS windows (production
   prompts, schema-constrained answers of at most ANSWER_TOKENS, temperature 0) through the
   production Runtime with a fixed pool of W workers, then with workers = "auto". Reported:
   windows per minute and the ratio to the best fixed count. The server decodes one
   request at a time, so more workers only queue; the adaptive pool should not lose to
   the best fixed count by more than its probing costs.

Run: python -m benchmarks.llm_server [--quick] [--windows N] [--answer-tokens N]
(needs `make install-llm`); each case is printed to stderr as it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import openai

from ytpiped import config
from ytpiped.clock import SystemClock
from ytpiped.mining import prompts
from ytpiped.mining.backends import response_format
from ytpiped.mining.llm import LLMError
from ytpiped.mining.runner import Runtime
from ytpiped.mining.schema import WindowResult, json_schema
from ytpiped.mining.windows import Window, make_windows, parse_segments
from ytpiped.testing import llama_server
from ytpiped.testing.media_server import MEDIA_DIR

N_CTX = 2048
WINDOW_TOKENS = 120
ANSWER_TOKENS = 512  # SmolLM2 needs this much for a whole answer (192 cut every one)
ROUNDS = 3
WINDOWS = 8
SUMMARY = ("A talk about memory, sleep, exercise and stress, then solar power, the ocean "
           "and coffee. One speaker.")


def windows() -> list[Window]:
    """The demo's spoken media as one talk (≈ 340 tokens), one sentence a segment, cut as
    the mine stage cuts: four windows."""
    manifest = json.loads((MEDIA_DIR / "manifest.json").read_text())
    text = " ".join(m["text"] for m in manifest.values() if m.get("text"))
    sentences = [s.strip() + "." for s in text.split(".") if s.strip()]
    segs = parse_segments([{"start": 4.0 * i, "end": 4.0 * (i + 1), "text": s}
                           for i, s in enumerate(sentences)])
    return make_windows(segs, WINDOW_TOKENS, 20)


def layout(kind: str, title: str, w: Window) -> list[dict[str, str]]:
    if kind == "shared_first":  # production: prompts.window_messages
        return prompts.window_messages(title, "Demo channel", SUMMARY, w.text, w.start, w.end)
    own = prompts.window_message(w.text, w.start, w.end)["content"]
    episode = prompts.shared_prefix(title, "Demo channel", SUMMARY)["content"]
    return [{"role": "system", "content": prompts.MINE_SYSTEM},
            {"role": "user", "content": f"{own}\n\n{episode.removeprefix(prompts.MINE_SYSTEM)}"}]


async def prompt_seconds(client: openai.AsyncOpenAI, model: str,
                         messages: list[dict[str, str]]) -> tuple[float, int]:
    """Time of a request that generates one token (prompt processing), prompt tokens."""
    schema = json_schema(WindowResult)
    create: Any = client.chat.completions.create
    t0 = time.perf_counter()
    resp = await create(model=model, messages=messages, max_tokens=1, temperature=0.0,
                        response_format=response_format("json_object", schema))
    return time.perf_counter() - t0, int(resp.usage.prompt_tokens if resp.usage else 0)


async def prefix_reuse(server: llama_server.LlamaServer, rounds: int) -> dict[str, Any]:
    ws = windows()
    client = openai.AsyncOpenAI(base_url=server.url, api_key="bench", max_retries=0,
                                timeout=300)
    out: dict[str, Any] = {"windows": len(ws)}
    try:
        for kind in ("shared_first", "window_first"):
            ratios, firsts, rests, tokens = [], [], [], []
            for r in range(rounds):
                # another video's request first: window 1 cannot reuse this video's prefix
                await prompt_seconds(client, server.model,
                                     layout(kind, f"Another talk {kind} {r}", ws[-1]))
                times = []
                for w in ws:
                    s, n = await prompt_seconds(client, server.model,
                                                layout(kind, f"Demo talk {r}", w))
                    times.append(s)
                    tokens.append(n)
                rest = statistics.mean(times[1:])
                ratios.append(rest / times[0])
                firsts.append(times[0])
                rests.append(rest)
            out[kind] = {"window1_s": round(statistics.median(firsts), 3),
                         "windows2_n_s": round(statistics.median(rests), 3),
                         "ratio": round(statistics.median(ratios), 3),
                         "prompt_tokens_mean": round(statistics.mean(tokens), 1)}
    finally:
        await client.close()
    return out


async def pool_case(server: llama_server.LlamaServer, ws: list[Window], workers: int | None,
                    per_case: int, answer_tokens: int) -> dict[str, Any]:
    """All windows through the production Runtime: fixed `workers`, or None for "auto"."""
    clock = SystemClock()
    flags: dict[str, Any] = {"data_dir": str(Path("/tmp")), "mine.hosts": [server.url],
                             "mine.api": "openai", "mine.model": server.model,
                             "mine.num_ctx": server.n_ctx, "mine.answer_tokens": answer_tokens,
                             "mine.request_timeout_s": 600.0, "mine.retry_base_s": 0.05,
                             "mine.workers": workers if workers is not None else "auto"}
    cfg = config.load(flags=flags).mine
    rt = Runtime.from_config(cfg, clock)
    await rt.ensure_sized()
    lat: list[float] = []
    invalid = 0

    async def one(i: int, w: Window) -> None:
        nonlocal invalid
        msgs = prompts.window_messages(f"Demo talk {i // len(ws)}", "Demo channel", SUMMARY,
                                       w.text, w.start, w.end)
        t0 = time.perf_counter()
        try:
            res = await rt.structured(cfg.model, msgs, WindowResult)
        except LLMError:
            invalid += 1
            return
        lat.append(time.perf_counter() - t0)
        invalid += res.value is None

    todo = [ws[i % len(ws)] for i in range(per_case)]
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, w) for i, w in enumerate(todo)))
    elapsed = time.perf_counter() - t0
    history = list(rt.pool.history)
    await rt.close()
    return {"workers": workers if workers is not None else "auto",
            "settled": history[-1], "history": ">".join(map(str, history[-8:])),
            "windows_per_min": round(60 * len(todo) / elapsed, 2),
            "p50_latency_s": round(statistics.median(lat), 2) if lat else None,
            "invalid": invalid, "tokens_per_s": round(rt.llm.tokens_per_s(), 1)}


async def main_async(quick: bool, per_case: int, answer_tokens: int) -> dict[str, Any]:
    server = llama_server.start(n_ctx=N_CTX)
    try:
        reuse = await prefix_reuse(server, 1 if quick else ROUNDS)
        print(f"prefix reuse: {json.dumps(reuse)}", file=sys.stderr, flush=True)
        ws = windows()
        fixed = []
        for w in [*range(1, 7), None]:
            case = await pool_case(server, ws, w, per_case, answer_tokens)
            print(f"pool case: {json.dumps(case)}", file=sys.stderr, flush=True)
            fixed.append(case)
        auto = fixed.pop()
    finally:
        server.stop()
    best = max(fixed, key=lambda r: r["windows_per_min"])
    print("prefix reuse (prompt processing of windows 2..n / window 1, same video)")
    for kind in ("shared_first", "window_first"):
        r = reuse[kind]
        print(f"  {kind:<13} window 1 {r['window1_s']:.3f} s, windows 2..n {r['windows2_n_s']:.3f}"
              f" s, ratio {r['ratio']:.3f} ({r['prompt_tokens_mean']} prompt tokens)")
    print(f"\n{'workers':<8} {'settled':>7} {'win/min':>8} {'p50 s':>6} {'tok/s':>7} "
          f"{'invalid':>7}  history")
    for r in [*fixed, auto]:
        print(f"{r['workers']!s:<8} {r['settled']:>7} {r['windows_per_min']:>8} "
              f"{r['p50_latency_s']!s:>6} {r['tokens_per_s']:>7} {r['invalid']:>7}  "
              f"{r['history']}")
    return {"model": "SmolLM2-135M-Instruct Q4_1", "server": "llama_cpp.server",
            "n_ctx": N_CTX, "answer_tokens": answer_tokens, "windows_per_case": per_case,
            "prefix_reuse": reuse,
            "fixed": {str(r["workers"]): r["windows_per_min"] for r in fixed},
            "best_fixed_workers": best["workers"],
            "adaptive_windows_per_min": auto["windows_per_min"],
            "adaptive_settled": auto["settled"],
            "adaptive_ratio": round(auto["windows_per_min"] / best["windows_per_min"], 3),
            "invalid": sum(r["invalid"] for r in [*fixed, auto])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one prefix-reuse round")
    p.add_argument("--windows", type=int, default=WINDOWS, metavar="N",
                   help="windows mined per pool case (default: %(default)s)")
    p.add_argument("--answer-tokens", type=int, default=ANSWER_TOKENS, metavar="N",
                   help="answer cap of the pool cases (default: %(default)s)")
    args = p.parse_args()
    print(json.dumps(asyncio.run(main_async(args.quick, args.windows, args.answer_tokens)),
                     sort_keys=True))


if __name__ == "__main__":
    main()
