"""The mine stage: transcript -> windows -> claims, people, concepts through the LLM.

For one video: read DATA/transcripts/<id>.json, make a short episode summary first (sent
with every window as context, in the prefix all windows share: ytpiped.mining.prompts),
cut the transcript into overlapping windows that fit the servers' context beside the prompt
and answer (mine.window_tokens at most), then mine every window not done yet through the
shared adaptive pool. A window the server still finds too long for its context is mined as
two halves (again, up to MAX_SPLITS times), never cut short; one whose answer runs past
mine.answer_tokens even when asked for a shorter one, as two halves once. Each window's
result is saved as a part the moment it arrives, so a crash or restart resumes at the next
window; a part made with an older prompt version or model, or for a different window plan,
is mined again.
A window whose reply stays invalid after one repair request (or that does not fit the
context even in pieces) is saved as failed with the raw reply and the other windows go on;
the video is `mined` only when every window was: otherwise Retryable(mining_incomplete)
while it has attempts left (the next attempt asks only for the failed windows), then
Permanent(mining_incomplete)
naming how many windows failed. `ytpiped retry` again mines only those. Claims of
overlapping windows are deduplicated and written to DATA/mining/<id>.mined.json for the
evaluate stage, with the tokens the servers counted: per window (in its part), for the
summary, and for the video.

A busy, overloaded, unreachable or restarting server is not the video's fault: the shared
runtime pauses all LLM work (ytpiped.mining.outage), `gate` stops claiming until the pause
ends, and a video in flight goes back as Cooldown(kind) without spending an attempt (the
windows it finished are kept). No transcript -> Permanent(transcript_missing).
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytpiped import kinds, metrics
from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.files import atomic_write_json
from ytpiped.mining import prompts
from ytpiped.mining.claims import merge_windows, place_claims
from ytpiped.mining.llm import KIND_CONTEXT, LLMError
from ytpiped.mining.llm_kinds import KIND_CUT, KIND_INVALID
from ytpiped.mining.outage import SERVER_KINDS, WHAT
from ytpiped.mining.runner import Runtime, Tokens
from ytpiped.mining.schema import EpisodeSummary, WindowResult
from ytpiped.mining.windows import (
    Segment,
    Window,
    approx_tokens,
    chapter_windows,
    make_windows,
    parse_segments,
    split_long,
    split_window,
)
from ytpiped.paths import DataDir
from ytpiped.stages.base import Context, Item, Outcome, StageBase

SUMMARY_TOKENS = 1200  # transcript tokens the episode summary is made from, at most
MIN_WINDOW_TOKENS = 50  # a context that leaves less room than this cannot mine anything
MAX_SPLITS = 3  # a window too long for the context is halved at most this often (8 pieces)
MAX_CUT_SPLITS = 1  # a window whose answers run past mine.answer_tokens: halved once
TOKEN_SAMPLES = 50  # videos whose token counts give the median in status


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
#: why a window failed, as the video's error names it
REASONS = {KIND_INVALID: "invalid LLM output after repair",
           KIND_CUT: "LLM answer cut at mine.answer_tokens, also when asked for a shorter one "
                     "and for half the window",
           KIND_CONTEXT: "prompt longer than mine.num_ctx: raise it or lower "
                         "mine.window_tokens"}


def llm_decision(exc: LLMError, ctx: Context, rt: Runtime) -> Exception:
    """The server's problem: a Cooldown (no attempt spent). The video is due again at once:
    the stages' gates hold every claim until the pause ends, so it goes on as soon as the
    server answers again rather than at the end of a pause that an answer cut short. The
    request's own problem: a retry (spends an attempt)."""
    if exc.kind in SERVER_KINDS and not exc.own:
        what = WHAT.get(exc.kind, exc.kind)
        return Cooldown(f"{rt.outage.server} is {what}: {exc} (the video waits, no attempt "
                        "spent)", kind=exc.kind, until=ctx.clock.now())
    return Retryable(str(exc), kind=exc.kind)


def window_budget(rt: Runtime, window_tokens: int, item: Item, summary: str) -> int:
    """mine.window_tokens, or less where the context cannot hold that beside the prompt
    every window carries and the answer; Permanent when not even a small window fits."""
    fixed = approx_tokens(prompts.shared_prefix(item.title, item.channel, summary)["content"])
    fixed += approx_tokens(prompts.window_message("", 99999.9, 99999.9, "x" * 80)["content"])
    room = rt.room(fixed)
    if room < MIN_WINDOW_TOKENS:
        raise Permanent(f"the LLM context ({rt.context} tokens: mine.num_ctx or what the "
                        f"server reports) leaves room for {room} transcript tokens beside the "
                        f"prompt (~{fixed}) and two answers of mine.answer_tokens "
                        f"({rt.cfg.answer_tokens}): raise the server's context or lower "
                        "mine.answer_tokens", kind=KIND_CONTEXT)
    return min(window_tokens, room)


def summary_text(segments: Sequence[Segment], budget: int) -> str:
    """The transcript's beginning, whole pieces up to `budget` tokens (at least one)."""
    text: list[str] = []
    used = 0
    for seg in split_long(segments, max(1, budget)):
        cost = approx_tokens(seg.text)
        if text and used + cost > budget:
            break
        text.append(seg.text)
        used += cost
    return " ".join(text)


def token_report(summary: Mapping[str, Any] | None, windows: Sequence[Window],
                 parts: Mapping[int, Any]) -> dict[str, Any]:
    """The video's tokens: per window, for the summary, and in all (as servers counted)."""
    per = {w.idx: Tokens.load((parts.get(w.idx) or {}).get("tokens")) for w in windows}
    summ = Tokens.load((summary or {}).get("tokens"))
    total = sum(per.values(), summ)
    return {**total.dump(), "mine": total.dump(), "summary": summ.dump(),
            "windows": {str(i): t.dump() for i, t in per.items()}}


@dataclass(frozen=True)
class Mined:
    """One window's answer, from one request or from the halves it was split into."""

    data: dict[str, Any]  # claims, people, concepts (place_claims)
    tokens: Tokens
    repaired: bool
    host: str
    pieces: int
    error: str | None = None  # a piece's reply stayed invalid after repair
    raw: str | None = None
    kind: str = KIND_INVALID  # of the error

    def __add__(self, other: Mined) -> Mined:
        data = {k: [*self.data.get(k, []), *other.data.get(k, [])]
                for k in ("claims", "people", "concepts")}
        bad = self if self.error else other
        return Mined(data, self.tokens + other.tokens, self.repaired or other.repaired,
                     self.host, self.pieces + other.pieces, self.error or other.error,
                     bad.raw, bad.kind)


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
    """What the mine (pool=True) or evaluate stage publishes: the pool's figures, the
    servers' token throughput and the stage-wide pause, with an alert line while it runs
    (mine only, so `status` shows it once)."""
    status: dict[str, Any] = {}
    if pool:
        status.update({"workers": rt.pool.limit,
                       "rate_windows_per_min": round(rt.pool.rate_per_min(), 2),
                       "in_flight": rt.pool.in_flight, "overloads": rt.pool.overloads,
                       "tokens_per_s": round(rt.llm.tokens_per_s(), 1),
                       "completion_tokens_per_s": round(rt.llm.completion_tokens_per_s(), 1),
                       "context_tokens": rt.context})
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
        self.restore(last)

    def restore(self, last: Mapping[str, Any]) -> None:
        """Take over what an earlier daemon published and this stage keeps."""

    def extra_status(self) -> dict[str, Any]:
        return {}

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
            await ctx.publish({**stage_status(rt, now, pool=self.publishes_pool),
                               **self.extra_status()})

    async def close(self) -> None:
        await self.runtime.close()


class MineStage(LLMStage):
    name = "mine"
    publishes_pool = True

    def __init__(self, runtime: Runtime, *, concurrency: int = 2) -> None:
        super().__init__(runtime, concurrency=concurrency)
        self.token_samples: list[int] = []  # tokens of the last TOKEN_SAMPLES mined videos

    def restore(self, last: Mapping[str, Any]) -> None:
        samples = last.get("token_samples")
        if isinstance(samples, list):
            self.token_samples = [int(x) for x in samples if isinstance(x, int | float)]

    def extra_status(self) -> dict[str, Any]:
        median = statistics.median(self.token_samples) if self.token_samples else None
        return {"tokens_per_video": round(median) if median is not None else None,
                "token_samples": list(self.token_samples)}

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
        rt = self.runtime
        try:
            await rt.ensure_sized(ctx.log)
            summary = await self._summary(item, ctx, rt, segments)
            window_tokens = window_budget(rt, cfg.window_tokens, item, summary)
            if window_tokens < cfg.window_tokens:
                ctx.log.info("mine_windows_fitted", window_tokens=window_tokens,
                             context=rt.context, configured=cfg.window_tokens)
            windows = (chapter_windows(segments, chapters, window_tokens, cfg.overlap_tokens)
                       if chapters else make_windows(segments, window_tokens,
                                                     cfg.overlap_tokens))
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
        tokens = token_report((await ctx.parts.load("summary")).get(0), windows, parts)
        out = {"video_id": item.id, "title": item.title, "channel": item.channel,
               "language": transcript.get("language"), "duration_s": transcript.get("duration_s"),
               "summary": summary, **merged, "tokens": tokens,
               "provenance": {"model": cfg.model, "prompt_version": prompts.MINE_PROMPT_VERSION,
                              "api": ",".join(rt.llm.apis()),
                              "options": {**rt.llm.options, "keep_alive": cfg.keep_alive,
                                          "window_tokens": window_tokens,
                                          "overlap_tokens": cfg.overlap_tokens},
                              "windows": len(windows)}}
        await asyncio.to_thread(write_json_atomic,
                                DataDir(ctx.data_dir).mined(item.id), out)
        video_tokens = int(tokens["prompt"]) + int(tokens["completion"])
        self.token_samples = [*self.token_samples, video_tokens][-TOKEN_SAMPLES:]
        metrics.video_tokens(video_tokens)
        await self.publish_changes(ctx, rt, force=True)
        info = {"windows": len(windows), "mined_now": stats["mined"],
                "failed_windows": len(merged["failed_windows"]),
                "claims": len(merged["claims"]), "prompt_version": prompts.MINE_PROMPT_VERSION,
                "prompt_tokens": tokens["prompt"], "completion_tokens": tokens["completion"]}
        ctx.log.info("mine_finished", **info)
        return Outcome(info={"mine": info})

    async def _summary(self, item: Item, ctx: Context, rt: Runtime,
                       segments: Sequence[Segment]) -> str:
        model = ctx.settings.mine.model
        done = (await ctx.parts.load("summary")).get(0)
        if (isinstance(done, dict) and done.get("prompt_version") == prompts.MINE_PROMPT_VERSION
                and done.get("model") == model):
            return str(done.get("summary", ""))
        fixed = approx_tokens("".join(m["content"] for m in prompts.summary_messages(
            item.title, item.channel, "")))
        text = summary_text(segments, min(SUMMARY_TOKENS, max(1, rt.room(fixed))))
        try:
            res = await rt.structured(model, prompts.summary_messages(
                item.title, item.channel, text), EpisodeSummary)
            summary, error = (res.value.summary if res.value is not None else ""), res.error
        except LLMError as exc:
            if exc.kind != KIND_CONTEXT and not exc.own:
                raise
            ctx.log.warning("mine_summary_failed", kind=exc.kind, error=str(exc))
            return ""  # the windows are mined without it; the next attempt asks again
        await ctx.parts.save("summary", 0, {"summary": summary, "model": model,
                                            "prompt_version": prompts.MINE_PROMPT_VERSION,
                                            "error": error, "tokens": res.tokens.dump()})
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
        base: dict[str, Any] = {"model": model, "prompt_version": prompts.MINE_PROMPT_VERSION,
                                "span": [round(w.start, 3), round(w.end, 3)]}
        try:
            got = await self._mine_piece(item, ctx, rt, w, summary, 0)
        except LLMError as exc:
            if exc.kind != KIND_CONTEXT and not exc.own:
                raise
            await self._window_failed(ctx, w, {**base, "host": exc.host, "repaired": False,
                                               "tokens": Tokens().dump()},
                                      exc.kind, str(exc), None)
            return
        base.update(host=got.host, repaired=got.repaired, tokens=got.tokens.dump())
        if got.pieces > 1:
            base["pieces"] = got.pieces
        if got.error is not None:
            await self._window_failed(ctx, w, base, got.kind, got.error, got.raw)
            return
        await ctx.parts.save("window", w.idx, {**base, "status": "ok", **got.data})
        metrics.window_mined(ok=True)

    async def _mine_piece(self, item: Item, ctx: Context, rt: Runtime, w: Window,
                          summary: str, splits: int) -> Mined:
        """One window (or a piece of one): one structured request; a prompt longer than
        the context is mined as two halves instead, up to MAX_SPLITS deep; a window whose
        answer runs past mine.answer_tokens even when asked for a shorter one, once."""
        model = ctx.settings.mine.model
        msgs = prompts.window_messages(item.title, item.channel, summary, w.text, w.start, w.end,
                                       w.chapter)
        try:
            res = await rt.structured(model, msgs, WindowResult)
        except LLMError as exc:
            halves = split_window(w) if exc.kind == KIND_CONTEXT and not exc.own and \
                splits < MAX_SPLITS else None
            if halves is None:
                raise
            ctx.log.info("mine_window_split", window=w.idx, tokens=w.tokens, depth=splits + 1)
            first = await self._mine_piece(item, ctx, rt, halves[0], summary, splits + 1)
            return first + await self._mine_piece(item, ctx, rt, halves[1], summary, splits + 1)
        if res.value is None and res.kind == KIND_CUT and splits < MAX_CUT_SPLITS:
            halves = split_window(w)
            if halves is not None:
                ctx.log.info("mine_window_split", window=w.idx, tokens=w.tokens,
                             depth=splits + 1, why=KIND_CUT)
                spent = Mined({}, res.tokens, res.repaired, res.host, 0)
                first = await self._mine_piece(item, ctx, rt, halves[0], summary, splits + 1)
                return spent + first + await self._mine_piece(item, ctx, rt, halves[1],
                                                              summary, splits + 1)
        if res.value is None:
            return Mined({}, res.tokens, res.repaired, res.host, 1, res.error or "invalid",
                         res.raw, res.kind or KIND_INVALID)
        return Mined(place_claims(res.value, w), res.tokens, res.repaired, res.host, 1)

    async def _window_failed(self, ctx: Context, w: Window, base: dict[str, Any], kind: str,
                             error: str | None, raw: str | None) -> None:
        ctx.log.warning("mine_window_failed", window=w.idx, kind=kind, error=error)
        await ctx.record_event("window_failed", kind=kind, message=f"window {w.idx}: {error}")
        await ctx.parts.save("window", w.idx, {**base, "status": "failed", "kind": kind,
                                               "error": error, "raw": raw})
        metrics.window_mined(ok=False)
