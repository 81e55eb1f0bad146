"""The evaluate stage: one LLM call per video that ranks, deduplicates and scores the mined
claims and writes a long summary, with `eval_model` (or `model` when empty); a video with
more claims than one answer ranks (MAX_RANKED) is ranked in parts, the first with the
summary, and its claims are then ranked together by importance.

Reads DATA/mining/<id>.mined.json (written by the mine stage) and writes DATA/mining/<id>.json
atomically: claims (each with importance, rank, duplicate_of) + people + concepts + the
evaluation + provenance (models, prompt version hash, options) + the tokens mining and
evaluation took. `mine.eval_workers` videos are evaluated at once; their requests go through
the shared adaptive pool (so mining and evaluation together never send the servers more
than the pool allows) and the model gate, so evaluations with another model are grouped
instead of making the server swap models for every video. An invalid reply gets one repair request;
if it is still invalid, the output is written with the claims unranked and the raw reply
kept under evaluation.raw (the video is done, not failed). A busy, overloaded, unreachable
or restarting server pauses this stage with the mine stage (ytpiped.mining.outage): `gate`
holds claims and a video in flight goes back without spending an attempt.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ytpiped.errors import Permanent
from ytpiped.mining import prompts
from ytpiped.mining.llm import LLMError
from ytpiped.mining.llm_kinds import KIND_INVALID
from ytpiped.mining.runner import Runtime, Structured, Tokens
from ytpiped.mining.schema import MAX_RANKED, Evaluation, M, Ranked, Ranking
from ytpiped.paths import DataDir
from ytpiped.stages.base import Context, Item, Outcome
from ytpiped.stages.mine import LLMStage, llm_decision, read_json, write_json_atomic


def parts(n: int, most: int = MAX_RANKED) -> list[tuple[int, int]]:
    """The [start, end) ranges `n` claims are ranked in: one request ranks at most `most`,
    so more claims go in as few parts as that allows, of nearly equal size."""
    count = max(1, -(-n // most))
    size, extra = divmod(n, count)  # the first `extra` parts take one claim more
    bounds = [i * size + min(i, extra) for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def apply_evaluation(claims: Sequence[Mapping[str, Any]],
                     ranked: Sequence[Ranked]) -> list[dict[str, Any]]:
    """Claims annotated with importance/rank/duplicate_of, ranked first, in rank order:
    by importance, ties in the order the answers listed them (the parts in order). Ids the
    model invented are ignored; claims it left out keep importance None."""
    n = len(claims)
    out = [dict(c, importance=None, rank=None, duplicate_of=None) for c in claims]
    seen: set[int] = set()
    kept: list[int] = []
    for r in ranked:
        if not 0 <= r.id < n or r.id in seen:
            continue
        seen.add(r.id)
        dup = r.duplicate_of if r.duplicate_of is not None and 0 <= r.duplicate_of < n \
            and r.duplicate_of != r.id else None
        out[r.id]["importance"] = r.importance
        out[r.id]["duplicate_of"] = dup
        if dup is None:
            kept.append(r.id)
    kept.sort(key=lambda i: -int(out[i]["importance"]))  # stable: the listed order breaks ties
    for rank, i in enumerate(kept, start=1):
        out[i]["rank"] = rank
    return sorted(out, key=lambda c: (c["rank"] is None, c["rank"] or 0,
                                      c.get("start") or 0.0))


def with_evaluation(tokens: Any, spent: Tokens) -> dict[str, Any]:
    """The mined video's token report with the evaluation's tokens added (and counted in
    the video's prompt/completion totals)."""
    report = dict(tokens) if isinstance(tokens, dict) else {}
    mine = Tokens.load(report.get("mine") or report)
    return {**report, **(mine + spent).dump(), "mine": mine.dump(), "evaluate": spent.dump()}


class EvaluateStage(LLMStage):
    name = "evaluate"

    def __init__(self, runtime: Runtime, *, concurrency: int | None = None) -> None:
        super().__init__(runtime, concurrency=concurrency or runtime.cfg.eval_workers)

    async def _ask(self, ctx: Context, model: str, messages: Sequence[Mapping[str, str]],
                   schema: type[M]) -> Structured[M]:
        """One evaluation request; a busy or unreachable server raises the stage's decision
        (the video goes back, nothing written)."""
        try:
            return await self.runtime.structured(model, messages, schema)
        except LLMError as exc:
            decision = llm_decision(exc, ctx, self.runtime)
            await self.publish_changes(ctx, self.runtime)
            raise decision from exc

    async def run(self, item: Item, ctx: Context) -> Outcome:
        cfg = ctx.settings.mine
        src = DataDir(ctx.data_dir).mined(item.id)
        try:
            mined = await asyncio.to_thread(read_json, src)
        except FileNotFoundError:
            raise Permanent(f"no mined claims at {src}", kind="mined_missing") from None
        except json.JSONDecodeError as exc:
            raise Permanent(f"{src} is not JSON: {exc}", kind="mined_invalid") from None
        rt = self.runtime
        model = cfg.eval_model or cfg.model
        claims: list[dict[str, Any]] = mined.get("claims", [])
        evaluation: dict[str, Any]
        spent = Tokens()
        if not claims:
            evaluation = {"status": "empty", "summary": mined.get("summary") or "", "ranked": []}
            ranked_claims: list[dict[str, Any]] = []
        else:
            summary = mined.get("summary") or ""

            def messages(start: int, stop: int) -> list[prompts.Message]:
                return prompts.eval_messages(item.title, item.channel, summary,
                                             claims[start:stop], start)

            split = parts(len(claims))
            (first, end), rest = split[0], split[1:]
            res = await self._ask(ctx, model, messages(first, end), Evaluation)
            spent = res.tokens
            if res.value is None:
                kind = res.kind or KIND_INVALID
                ctx.log.warning("evaluate_invalid_reply", kind=kind, error=res.error)
                await ctx.record_event("evaluation_failed", kind=kind, message=res.error)
                evaluation = {"status": "failed", "kind": kind, "error": res.error,
                              "raw": res.raw}
                ranked_claims = [dict(c, importance=None, rank=None, duplicate_of=None)
                                 for c in claims]
            else:
                ranked = list(res.value.ranked)
                unranked = 0  # parts whose answer stayed invalid: their claims unranked
                for start, stop in rest:  # a video with more claims than one answer ranks
                    more = await self._ask(ctx, model, messages(start, stop), Ranking)
                    spent += more.tokens
                    if more.value is None:
                        unranked += 1
                        ctx.log.warning("evaluate_part_invalid", part=f"{start}-{stop - 1}",
                                        kind=more.kind, error=more.error)
                    else:
                        ranked += more.value.ranked
                evaluation = {"status": "ok", "summary": res.value.summary,
                              "repaired": res.repaired, "parts": len(split),
                              "unranked_parts": unranked,
                              "ranked": [r.model_dump() for r in ranked]}
                ranked_claims = apply_evaluation(claims, ranked)
        prov = dict(mined.get("provenance") or {})
        out = {**{k: v for k, v in mined.items() if k not in ("claims", "provenance")},
               "claims": ranked_claims, "evaluation": evaluation,
               "tokens": with_evaluation(mined.get("tokens"), spent),
               "provenance": {**prov, "eval_model": model,
                              "eval_prompt_version": prompts.EVAL_PROMPT_VERSION,
                              "options": {**prov.get("options", {}),
                                          **rt.llm.options}}}
        dst = DataDir(ctx.data_dir).mining(item.id)
        await asyncio.to_thread(write_json_atomic, dst, out)
        info = {"claims": len(ranked_claims), "evaluation": evaluation["status"],
                "eval_model": model}
        ctx.log.info("evaluate_finished", **info)
        return Outcome(info={"evaluate": info})
