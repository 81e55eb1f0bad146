"""Answers a small model gives under a grammar (what SmolLM2 does on llama.cpp's server),
over real HTTP on both APIs: numbers outside the schema's bounds are clamped, logged and
counted, not failed windows or evaluations; the schema sent bounds every list (maxItems)
and a longer list (a server without a grammar) is cut to it, logged and counted alike; an
answer cut at mine.answer_tokens is asked for again, shorter and without being shown back,
then (a window) mined as two halves, and what still fails is reported as
`llm_reply_cut`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.integration.test_mining_stage import TOPICS, Rig
from tests.mining_ctx import item, write_transcript
from ytpiped import metrics
from ytpiped.errors import Retryable
from ytpiped.mining.llm_kinds import KIND_CUT
from ytpiped.mining.schema import MAX_CLAIMS, MAX_CONCEPTS, MAX_PEOPLE, MAX_RANKED, MAX_TOPICS
from ytpiped.testing.fake_ollama import FakeOllama

VIDEO = "vid00000001"


@pytest.fixture
async def rig(data_dir: Path, fake: FakeOllama, api: str) -> AsyncIterator[Rig]:
    r = Rig(data_dir, [fake], api=api)
    write_transcript(data_dir, VIDEO, TOPICS)
    yield r
    await r.runtime.close()


def requests_for(fake: FakeOllama, title: str) -> list[dict[str, Any]]:
    return [b for b in fake.chat_bodies() if (b.get("format") or {}).get("title") == title]


def clamped_count(field: str) -> float:
    return float(metrics.REGISTRY.get_sample_value("ytpiped_llm_values_clamped_total",
                                                   {"field": field}) or 0.0)


def evaluation(rig: Rig) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((rig.data_dir / "mining" / f"{VIDEO}.json").read_text())
    return doc


async def test_numbers_outside_the_schema_s_range_are_clamped_logged_and_counted(
        rig: Rig, fake: FakeOllama) -> None:
    fake.inject("out_of_range", times=1000)  # every answer: importance 0, confidence 5
    before = clamped_count("importance"), clamped_count("confidence")
    with capture_logs() as logged:
        out = await rig.mine.run(item(VIDEO), rig.ctx)
        await rig.evaluate.run(item(VIDEO), rig.ctx)
    assert out.info["mine"]["failed_windows"] == 0
    doc = evaluation(rig)
    assert doc["evaluation"]["status"] == "ok" and not doc["evaluation"]["repaired"]
    ranked = doc["evaluation"]["ranked"]
    assert ranked and all(r["importance"] == 1 for r in ranked)
    assert doc["claims"] and all(c["confidence"] == 1.0 for c in doc["claims"])
    clamps = [e for e in logged if e["event"] == "llm_values_clamped"]
    by_schema = {e["schema"]: e["fields"] for e in clamps}
    assert by_schema["Evaluation"] == {"importance": len(ranked)}
    assert "confidence" in by_schema["WindowResult"]
    assert any("importance 0 -> 1" in x for e in clamps for x in e["examples"])
    assert clamped_count("importance") - before[0] == len(ranked)
    assert clamped_count("confidence") - before[1] == sum(
        e["fields"].get("confidence", 0) for e in clamps)
    # no request was spent on a repair
    assert not [b for b in fake.chat_bodies() if "could not be used" in
                b["messages"][-1]["content"]]


async def test_lists_past_their_most_items_are_cut_logged_and_counted(
        rig: Rig, fake: FakeOllama) -> None:
    fake.inject("overlong", times=1000)  # every list three items past its maxItems
    before = clamped_count("claims"), clamped_count("topics")
    with capture_logs() as logged:
        out = await rig.mine.run(item(VIDEO), rig.ctx)
        await rig.evaluate.run(item(VIDEO), rig.ctx)
    assert out.info["mine"]["failed_windows"] == 0
    # the schema the server got bounds each list
    sent = requests_for(fake, "WindowResult")[0]["format"]["properties"]
    assert [sent[k]["maxItems"] for k in ("claims", "people", "concepts")] == \
        [MAX_CLAIMS, MAX_PEOPLE, MAX_CONCEPTS]
    assert requests_for(fake, "EpisodeSummary")[0]["format"]["properties"]["topics"][
        "maxItems"] == MAX_TOPICS
    windows = [v for (k, _), v in rig.parts.items() if k == "window"]
    assert windows and all(w["status"] == "ok" and len(w["claims"]) == MAX_CLAIMS
                           for w in windows)
    cut = [e for e in logged if e["event"] == "llm_values_clamped"]
    by_schema = {e["schema"]: e["fields"] for e in cut if e["schema"] != "WindowResult"}
    assert by_schema == {"EpisodeSummary": {"topics": 1}, "Evaluation": {"ranked": 1}}
    assert sum(e["fields"].get("claims", 0) for e in cut) == len(windows)
    assert any(f"claims {MAX_CLAIMS + 3} -> {MAX_CLAIMS}" in x
               for e in cut for x in e["examples"])
    assert clamped_count("claims") - before[0] == len(windows)
    assert clamped_count("topics") - before[1] == 1
    # the evaluation: its ranked list cut to MAX_RANKED, not a failed evaluation
    doc = evaluation(rig)
    assert doc["evaluation"]["status"] == "ok"
    assert len(doc["evaluation"]["ranked"]) == MAX_RANKED
    # not a failed answer: no request was spent on a repair
    assert not [b for b in fake.chat_bodies() if "could not be used" in
                b["messages"][-1]["content"]]


async def test_a_cut_evaluation_is_asked_again_shorter_without_showing_the_cut_reply(
        rig: Rig, fake: FakeOllama) -> None:
    await rig.mine.run(item(VIDEO), rig.ctx)
    fake.inject("ramble", title="Evaluation")
    await rig.evaluate.run(item(VIDEO), rig.ctx)
    doc = evaluation(rig)
    assert doc["evaluation"]["status"] == "ok" and doc["evaluation"]["repaired"]
    first, again = requests_for(fake, "Evaluation")
    assert [m["role"] for m in again["messages"]] == \
        [m["role"] for m in first["messages"]] + ["user"]  # no assistant turn echoed
    ask = again["messages"][-1]["content"]
    assert "cut off at 1024 tokens, mine.answer_tokens" in ask and "shorter" in ask


async def test_an_evaluation_cut_twice_is_reported_as_llm_reply_cut(rig: Rig,
                                                                  fake: FakeOllama) -> None:
    await rig.mine.run(item(VIDEO), rig.ctx)
    fake.inject("ramble", times=2, title="Evaluation")
    await rig.evaluate.run(item(VIDEO), rig.ctx)
    ev = evaluation(rig)["evaluation"]
    assert ev["status"] == "failed" and ev["kind"] == KIND_CUT
    assert "cut off at 1024 tokens" in ev["error"]
    assert ("evaluation_failed", KIND_CUT, ev["error"]) in rig.ctx.events


async def test_a_window_cut_twice_is_mined_as_two_halves(rig: Rig, fake: FakeOllama) -> None:
    # in the first window only (not in the episode summary every window carries)
    fake.inject("ramble", times=2, match=TOPICS[3], title="WindowResult")
    out = await rig.mine.run(item(VIDEO), rig.ctx)
    assert out.info["mine"]["failed_windows"] == 0
    windows = out.info["mine"]["windows"]
    # every window once, the cut one twice more (a shorter answer asked for) and its halves
    assert len(rig.window_requests()) == windows + 1 + 2
    split = [v for (k, _), v in rig.parts.items()
             if k == "window" and v.get("pieces") == 2]
    assert len(split) == 1 and split[0]["status"] == "ok" and split[0]["repaired"]
    assert any(c["text"] == TOPICS[3] for c in split[0]["claims"])


async def test_a_window_cut_in_each_piece_fails_as_llm_reply_cut(rig: Rig,
                                                                fake: FakeOllama) -> None:
    # the whole window twice, then its half holding the topic twice
    fake.inject("ramble", times=4, match=TOPICS[3], title="WindowResult")
    with pytest.raises(Retryable) as exc:
        await rig.mine.run(item(VIDEO), rig.ctx)
    failed = [v for (k, _), v in rig.parts.items() if k == "window" and v["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["kind"] == KIND_CUT
    assert "cut off at 1024 tokens" in failed[0]["error"]
    assert "LLM answer cut at mine.answer_tokens" in str(exc.value)
    assert any(e[:2] == ("window_failed", KIND_CUT) for e in rig.ctx.events)
