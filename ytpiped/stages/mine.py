"""The mine stage: transcript -> windows -> claims, people, concepts through Ollama.

For one video: read DATA/transcripts/<id>.json, cut it into overlapping windows, make a
short episode summary first (sent with every window as context), then mine every window
not done yet through the shared adaptive pool. Each window's result is saved as a part the
moment it arrives, so a crash or restart resumes at the next window; a part made with an
older prompt version or model, or for a different window plan, is mined again. A window
whose reply stays invalid after one repair request (or whose prompt does not fit num_ctx) is
saved as failed with the raw reply and the other windows go on; the video is `mined` only
when every window was: otherwise Retryable(mining_incomplete) while it has attempts left
(the next attempt asks only for the failed windows), then Permanent(mining_incomplete)
naming how many windows failed. `ytpiped retry` again mines only those. Claims of
overlapping windows are deduplicated and written to DATA/mining/<id>.mined.json for the
evaluate stage.

A busy, overloaded, unreachable or restarting server is not the video's fault: the shared
runtime pauses all LLM work (ytpiped.mining.outage), `gate` stops claiming until the pause
ends, and a video in flight goes back as Cooldown(kind) without spending an attempt (the
windows it finished are kept). No transcript -> Permanent(transcript_missing).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ytpiped import kinds, metrics
from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.files import atomic_write_json
from ytpiped.mining import prompts
from ytpiped.mining.claims import merge_windows, place_claims
from ytpiped.mining.llm import KIND_CONTEXT, LLMError
from ytpiped.mining.outage import SERVER_KINDS, WHAT
from ytpiped.mining.runner import Runtime
from ytpiped.mining.schema import EpisodeSummary, WindowResult
from ytpiped.mining.windows import Window, chapter_windows, make_windows, parse_segments
from ytpiped.paths import DataDir
from ytpiped.stages.base import Context, Item, Outcome, StageBase

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


INCOMPLETE = kinds.MINING_INCOMPLETE
KIND_INVALID = "llm_invalid_json"
#: why a window failed, as the video's error names it
REASONS = {KIND_INVALID: "invalid LLM output after repair",
           KIND_CONTEXT: "prompt longer than mine.num_ctx: raise it or lower "
                         "mine.window_tokens"}


def llm_decision(exc: LLMError, ctx: Context, rt: Runtime) -> Exception:
    """The server's problem: a Cooldown (no attempt spent). The video is due again at once:
    the stages' gates hold every claim until the pause ends, so it goes on as soon as the
    server answers again rather than at the end of a pause that an answer cut short. The
    request's own problem: a retry (spends an attempt)."""
    if exc.kind in SERVER_KINDS and not exc.own:
        what = WHAT.get(exc.kind, exc.kind)
        return Cooldown(f"Ollama is {what}: {exc} (the video waits, no attempt spent)",
                        kind=exc.kind, until=ctx.clock.now())
    return Retryable(str(exc), kind=exc.kind)


def incomplete(failed: Sequence[Mapping[str, Any]], total: int, attempts_done: int,
               max_attempts: int) -> Exception:
    """The decision for a video with failed windows, after attempt `attempts_done`."""
    kinds = (str(p.get("kind") or KIND_INVALID) for p in failed)
    reasons = Counter(REASONS.get(k, f"{k} on each try while other requests were answered")
                      for k in kinds)
    why = next(iter(reasons)) if len(reasons) == 1 else \
        ", ".join(f"{n} {r}" for r, n in reasons.most_common())
    text = f"{len(failed)} of {total} windows could not be mined ({why})"
    if attempts_done >= max_attempts:
        return Permanent(f"{text} after {attempts_done} attempts; `ytpiped retry --kind "
                         f"{INCOMPLETE}` mines only those windows again", kind=INCOMPLETE)
    return Retryable(f"{text}; the next attempt mines only those", kind=INCOMPLETE)


def stage_status(rt: Runtime, now: float, *, pool: bool) -> dict[str, Any]:
    """What the mine (pool=True) or evaluate stage publishes: the pool's figures and the
    stage-wide pause, with an alert line while it runs (mine only, so `status` shows it
    once)."""
    status: dict[str, Any] = {}
    if pool:
        status.update({"workers": rt.pool.limit,
                       "rate_windows_per_min": round(rt.pool.rate_per_min(), 2),
                       "in_flight": rt.pool.in_flight, "overloads": rt.pool.overloads,
                       "llm_tokens_per_s": round(rt.llm.tokens_per_s(), 1)})
        alert = rt.outage.alert(now)
        if alert:
            status["alerts"] = [alert]
    status.update(rt.outage.status(now))
    return status


class LLMStage(StageBase):
    """What the mine and evaluate stages share: the runtime, and `gate`, which holds
    claims while the stage-wide pause runs and publishes the stage's status once per
    change of the pause."""

    name: str
    publishes_pool = False

    def __init__(self, runtime: Runtime, *, concurrency: int = 2) -> None:
        self.runtime = runtime  # one for mine and evaluate (pipeline.build_stages)
        self.concurrency = concurrency  # videos at once (mine: so the pool never runs dry)
        self._shown: tuple[int, bool] | None = (0, False)  # the pause as last published

    async def start(self, ctx: Context) -> None:
        last = await ctx.last_published() or {}
        if last.get("llm") not in (None, "ok"):
            self._shown = None  # an earlier daemon left a pause in the status: clear it

    async def gate(self, ctx: Context) -> None:
        rt = self.runtime
        await self.publish_changes(ctx, rt)
        if rt.outage.active(ctx.clock.now()):
            await rt.outage.wait(ctx.clock)
            await self.publish_changes(ctx, rt)

    async def publish_changes(self, ctx: Context, rt: Runtime, *, force: bool = False) -> None:
        now = ctx.clock.now()
        key = (rt.outage.version, rt.outage.active(now))
        if force or key != self._shown:
            self._shown = key
            await ctx.publish(stage_status(rt, now, pool=self.publishes_pool))

    async def close(self) -> None:
        await self.runtime.close()


class MineStage(LLMStage):
    name = "mine"
    publishes_pool = True

    async def run(self, item: Item, ctx: Context) -> Outcome:
        cfg = ctx.settings.mine
        path = DataDir(ctx.data_dir).transcript(item.id)
        try:
            transcript = await asyncio.to_thread(read_json, path)
        except FileNotFoundError:
            raise Permanent(f"no transcript at {path}", kind=kinds.TRANSCRIPT_MISSING) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Permanent(f"transcript {path} is not JSON: {exc}",
                            kind="transcript_invalid") from None
        segments = parse_segments(transcript.get("segments", []))
        chapters = transcript.get("chapters") or []
        windows = (chapter_windows(segments, chapters, cfg.window_tokens, cfg.overlap_tokens)
                   if chapters else make_windows(segments, cfg.window_tokens,
                                                 cfg.overlap_tokens))
        rt = self.runtime
        try:
            await rt.ensure_sized(ctx.log)
            summary = await self._summary(item, ctx, rt, windows)
            stats = await self._mine_all(item, ctx, rt, windows, summary)
        except LLMError as exc:
            decision = llm_decision(exc, ctx, rt)
            await self.publish_changes(ctx, rt)
            raise decision from exc
        parts = await ctx.parts.load("window")
        failed = [parts.get(w.idx) or {} for w in windows
                  if (parts.get(w.idx) or {}).get("status") != "ok"]
        if failed:
            await self.publish_changes(ctx, rt)
            raise incomplete(failed, len(windows), item.attempts + 1,
                             ctx.settings.daemon.max_attempts)
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
                                DataDir(ctx.data_dir).mined(item.id), out)
        await self.publish_changes(ctx, rt, force=True)
        info = {"windows": len(windows), "mined_now": stats["mined"],
                "failed_windows": len(merged["failed_windows"]),
                "claims": len(merged["claims"]), "prompt_version": prompts.MINE_PROMPT_VERSION}
        ctx.log.info("mine_finished", **info)
        return Outcome(info={"mine": info})

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
        try:
            res = await rt.structured(model, prompts.summary_messages(
                item.title, item.channel, " ".join(text)), EpisodeSummary)
            summary, error = (res.value.summary if res.value is not None else ""), res.error
        except LLMError as exc:
            if exc.kind != KIND_CONTEXT and not exc.own:
                raise
            ctx.log.warning("mine_summary_failed", kind=exc.kind, error=str(exc))
            return ""  # the windows are mined without it; the next attempt asks again
        await ctx.parts.save("summary", 0, {"summary": summary, "model": model,
                                            "prompt_version": prompts.MINE_PROMPT_VERSION,
                                            "error": error})
        return summary

    async def _mine_all(self, item: Item, ctx: Context, rt: Runtime, windows: list[Window],
                        summary: str) -> dict[str, int]:
        model = ctx.settings.mine.model
        done = await ctx.parts.load("window")
        todo = [w for w in windows if not (is_current(done.get(w.idx), w, model)
                                           and done[w.idx].get("status") == "ok")]
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
        msgs = prompts.window_messages(item.title, item.channel, summary, w.text, w.start, w.end,
                                       w.chapter)
        base: dict[str, Any] = {"model": model, "prompt_version": prompts.MINE_PROMPT_VERSION,
                                "span": [round(w.start, 3), round(w.end, 3)]}
        try:
            res = await rt.structured(model, msgs, WindowResult)
        except LLMError as exc:
            if exc.kind != KIND_CONTEXT and not exc.own:
                raise
            await self._window_failed(ctx, w, {**base, "host": exc.host, "repaired": False},
                                      exc.kind, str(exc), None)
            return
        base.update(host=res.host, repaired=res.repaired)
        if res.value is None:
            await self._window_failed(ctx, w, base, KIND_INVALID, res.error, res.raw)
            return
        await ctx.parts.save("window", w.idx, {**base, "status": "ok",
                                               **place_claims(res.value, w)})
        metrics.window_mined(ok=True)

    async def _window_failed(self, ctx: Context, w: Window, base: dict[str, Any], kind: str,
                             error: str | None, raw: str | None) -> None:
        ctx.log.warning("mine_window_failed", window=w.idx, kind=kind, error=error)
        await ctx.record_event("window_failed", kind=kind, message=f"window {w.idx}: {error}")
        await ctx.parts.save("window", w.idx, {**base, "status": "failed", "kind": kind,
                                               "error": error, "raw": raw})
        metrics.window_mined(ok=False)
