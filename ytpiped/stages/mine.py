"""The mine stage: transcript -> windows -> claims, people, concepts through Ollama.

For one video: read DATA/transcripts/<id>.json, cut it into overlapping windows, make a
short episode summary first (sent with every window as context), then mine every window
not done yet through the shared adaptive pool. Each window's result is saved as a part the
moment it arrives, so a crash or restart resumes at the next window; a part made with an
older prompt version or model, or for a different window plan, is mined again. A window
whose reply stays invalid after one repair request is saved as failed with the raw reply,
and the video goes on. Claims of overlapping windows are deduplicated and written to
DATA/mining/<id>.mined.json for the evaluate stage.

Errors: no transcript -> Permanent(transcript_missing); every host unreachable ->
Cooldown(llm_unavailable) with a doubling backoff (nothing is marked failed while a server
restarts); model not pulled -> Cooldown(llm_model_missing); windows still refused or timing
out after window_attempts -> Retryable with that kind (finished windows are kept).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.files import atomic_write_json
from ytpiped.mining import prompts
from ytpiped.mining.claims import merge_windows, place_claims
from ytpiped.mining.llm import KIND_UNAVAILABLE, LLMError
from ytpiped.mining.runner import Runtime, close_shared, shared_runtime
from ytpiped.mining.schema import EpisodeSummary, WindowResult
from ytpiped.mining.windows import Window, make_windows, parse_segments
from ytpiped.stages.base import Context, Item, Outcome

SUMMARY_TOKENS = 1200  # transcript tokens the episode summary is made from


write_json_atomic = atomic_write_json


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def is_current(part: Any, window: Window, model: str) -> bool:
    """A stored window part still valid for this plan, model and prompt version?"""
    return (isinstance(part, dict) and part.get("prompt_version") == prompts.MINE_PROMPT_VERSION
            and part.get("model") == model
            and part.get("span") == [round(window.start, 3), round(window.end, 3)])


def backoff_s(streak: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2 ** max(0, streak - 1)))


def llm_decision(exc: LLMError, ctx: Context, streak: int) -> Exception:
    """Server down or model missing: a Cooldown (doubling with `streak`, no attempt spent);
    anything else: a retry."""
    cfg = ctx.settings.mine
    if exc.kind in (KIND_UNAVAILABLE, "llm_model_missing"):
        wait = backoff_s(streak, cfg.unavailable_backoff_s, cfg.max_unavailable_backoff_s)
        ctx.log.warning("llm_paused", kind=exc.kind, wait_s=wait, error=str(exc))
        return Cooldown(str(exc), kind=exc.kind, until=ctx.clock.now() + wait)
    return Retryable(str(exc), kind=exc.kind)


class MineStage:
    name = "mine"

    def __init__(self, runtime: Runtime | None = None, *, concurrency: int = 2) -> None:
        self.runtime = runtime
        self.concurrency = concurrency  # videos mined at once, so the pool never runs dry
        self.down_streak = 0

    def _runtime(self, ctx: Context) -> Runtime:
        if self.runtime is None:
            self.runtime = shared_runtime(ctx.settings, ctx.clock)
        return self.runtime

    async def run(self, item: Item, ctx: Context) -> Outcome:
        cfg = ctx.settings.mine
        path = ctx.data_dir / "transcripts" / f"{item.id}.json"
        try:
            transcript = await asyncio.to_thread(read_json, path)
        except FileNotFoundError:
            raise Permanent(f"no transcript at {path}", kind="transcript_missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Permanent(f"transcript {path} is not JSON: {exc}",
                            kind="transcript_invalid") from None
        windows = make_windows(parse_segments(transcript.get("segments", [])),
                               cfg.window_tokens, cfg.overlap_tokens)
        rt = self._runtime(ctx)
        try:
            await rt.ensure_sized(ctx.log)
            summary = await self._summary(item, ctx, rt, windows)
            stats = await self._mine_all(item, ctx, rt, windows, summary)
        except LLMError as exc:
            raise self._decision(exc, ctx) from exc
        self.down_streak = 0
        parts = await ctx.parts.load("window")
        merged = merge_windows({w.idx: parts[w.idx] for w in windows if w.idx in parts})
        out = {"video_id": item.id, "title": item.title, "channel": item.channel,
               "language": transcript.get("language"), "duration_s": transcript.get("duration_s"),
               "summary": summary, **merged,
               "provenance": {"model": cfg.model, "prompt_version": prompts.MINE_PROMPT_VERSION,
                              "options": {**rt.llm.options, "keep_alive": cfg.keep_alive,
                                          "window_tokens": cfg.window_tokens,
                                          "overlap_tokens": cfg.overlap_tokens},
                              "windows": len(windows)}}
        await asyncio.to_thread(write_json_atomic,
                                ctx.data_dir / "mining" / f"{item.id}.mined.json", out)
        await ctx.publish({"workers": rt.pool.limit,
                           "rate_windows_per_min": round(rt.pool.rate_per_min(), 2),
                           "in_flight": rt.pool.in_flight, "overloads": rt.pool.overloads,
                           "llm_tokens_per_s": round(rt.llm.tokens_per_s(), 1)})
        info = {"windows": len(windows), "mined_now": stats["mined"],
                "failed_windows": len(merged["failed_windows"]),
                "claims": len(merged["claims"]), "prompt_version": prompts.MINE_PROMPT_VERSION}
        ctx.log.info("mine_finished", **info)
        return Outcome(info={"mine": info})

    def _decision(self, exc: LLMError, ctx: Context) -> Exception:
        if exc.kind in (KIND_UNAVAILABLE, "llm_model_missing"):
            self.down_streak += 1
        return llm_decision(exc, ctx, self.down_streak)

    async def _summary(self, item: Item, ctx: Context, rt: Runtime,
                       windows: list[Window]) -> str:
        model = ctx.settings.mine.model
        done = (await ctx.parts.load("summary")).get(0)
        if (isinstance(done, dict) and done.get("prompt_version") == prompts.MINE_PROMPT_VERSION
                and done.get("model") == model):
            return str(done.get("summary", ""))
        text: list[str] = []
        used = 0
        for seg in (s for w in windows[:2] for s in w.segments):
            if used >= SUMMARY_TOKENS:
                break
            if not text or seg.text != text[-1]:
                text.append(seg.text)
                used += len(seg.text) // 4
        res = await rt.structured(model, prompts.summary_messages(
            item.title, item.channel, " ".join(text)), EpisodeSummary)
        summary = res.value.summary if res.value is not None else ""
        await ctx.parts.save("summary", 0, {"summary": summary, "model": model,
                                            "prompt_version": prompts.MINE_PROMPT_VERSION,
                                            "error": res.error})
        return summary

    async def _mine_all(self, item: Item, ctx: Context, rt: Runtime, windows: list[Window],
                        summary: str) -> dict[str, int]:
        model = ctx.settings.mine.model
        done = await ctx.parts.load("window")
        todo = [w for w in windows if not is_current(done.get(w.idx), w, model)]
        if len(todo) < len(windows):
            ctx.log.info("mine_resumed", done=len(windows) - len(todo), todo=len(todo))
        tasks = [asyncio.create_task(self._mine_window(item, ctx, rt, w, summary),
                                     name=f"mine:{item.id}:{w.idx}") for w in todo]
        try:
            # first error wins; windows that finished are already saved
            for fut in asyncio.as_completed(tasks):
                await fut
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return {"mined": len(todo)}

    async def _mine_window(self, item: Item, ctx: Context, rt: Runtime, w: Window,
                           summary: str) -> None:
        model = ctx.settings.mine.model
        msgs = prompts.window_messages(item.title, item.channel, summary, w.text, w.start, w.end)
        res = await rt.structured(model, msgs, WindowResult)
        base = {"model": model, "prompt_version": prompts.MINE_PROMPT_VERSION, "host": res.host,
                "span": [round(w.start, 3), round(w.end, 3)], "repaired": res.repaired}
        if res.value is None:
            ctx.log.warning("mine_window_failed", window=w.idx, error=res.error)
            await ctx.record_event("window_failed", kind="llm_invalid_json",
                                   message=f"window {w.idx}: {res.error}")
            await ctx.parts.save("window", w.idx, {**base, "status": "failed",
                                                   "error": res.error, "raw": res.raw})
            return
        await ctx.parts.save("window", w.idx, {**base, "status": "ok",
                                               **place_claims(res.value, w)})

    async def close(self) -> None:
        if self.runtime is not None:
            await close_shared(self.runtime)
