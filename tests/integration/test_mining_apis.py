"""Both client APIs against FakeOllama over real HTTP: Ollama's own (the official `ollama`
client) and the OpenAI-compatible one (the official `openai` client on Ollama's /v1). The
same failures must lead to the same decisions whichever API a host speaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_mining_stage import TOPICS, Rig, claims_answered
from tests.mining_ctx import item, write_transcript
from ytpiped.errors import Cooldown, Retryable
from ytpiped.mining.llm import LLMClient
from ytpiped.stages.base import Outcome
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.fake_ollama import FakeOllama

APIS = ("ollama", "openai")
CHAT = {"ollama": "/api/chat", "openai": "/v1/chat/completions"}


#: talk between the claims: it fills a window without making the answer longer, so a small
#: context can hold a window and the answer for it (FakeOllama answers every sentence of
#: four words or more with a claim)
FILLER = " Okay. Right. Yes. Sure. Mm hm. Well. So. And then. Uh. Yeah. I see. Go on." * 2


def rig_for(data_dir: Path, fakes: list[FakeOllama], api: str, *, padded: bool = False,
            **mine: Any) -> Rig:
    r = Rig(data_dir, fakes, api=api, **mine)
    write_transcript(data_dir, "vid00000001", [t + FILLER for t in TOPICS] if padded else TOPICS)
    return r


async def mine_once(rig: Rig) -> Outcome:
    """Mine the test video once, then close the rig's LLM runtime."""
    try:
        return await rig.mine.run(item("vid00000001"), rig.ctx)
    finally:
        await rig.runtime.close()


def served(fake: FakeOllama, api: str) -> list[Any]:
    return [r for r in fake.requests if r.path == CHAT[api] and r.status == 200]


async def test_mine_and_evaluate_end_to_end_on_either_api(data_dir: Path, fake: FakeOllama,
                                                          api: str) -> None:
    rig = rig_for(data_dir, [fake], api)
    try:
        out = await rig.mine.run(item("vid00000001"), rig.ctx)
        await rig.evaluate.run(item("vid00000001"), rig.ctx)
    finally:
        await rig.runtime.close()
    assert out.info["mine"]["failed_windows"] == 0
    doc = json.loads((data_dir / "mining" / "vid00000001.json").read_text())
    assert sorted(c["text"] for c in doc["claims"]) == claims_answered(fake)
    assert all(c["quote_found"] == "exact" for c in doc["claims"])
    assert doc["evaluation"]["status"] == "ok"
    assert doc["provenance"]["api"] == api
    reqs = served(fake, api)
    assert reqs and all(r.path == CHAT[api] for r in fake.requests if "chat" in r.path)
    # tokens are what the server reported: Ollama's eval counts or OpenAI's usage
    assert doc["tokens"]["prompt"] == sum(r.prompt_tokens for r in reqs)
    assert doc["tokens"]["completion"] == sum(r.completion_tokens for r in reqs)
    for r in reqs:
        if api == "openai":  # the schema in response_format, the answer capped, temperature 0
            fmt = r.body["response_format"]
            assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["properties"]
            assert r.body["max_tokens"] == 1024 and r.body["temperature"] == 0
        else:
            assert r.body["format"]["properties"] and r.body["options"]["num_predict"] == 1024


@pytest.mark.parametrize(("fault", "kind"), [
    ("503", "llm_busy"), ("429", "llm_busy"), ("500", "llm_error"),
    ("drop", "llm_disconnected"), ("404", "llm_model_missing"),
    ("401", "llm_unauthorized"), ("garbage", "llm_bad_response")])
async def test_server_failures_pause_mining_without_spending_an_attempt(
        data_dir: Path, fake: FakeOllama, api: str, fault: str, kind: str) -> None:
    rig = rig_for(data_dir, [fake], api, unavailable_backoff_s=30.0)
    fake.inject(fault, times=1000)  # the server keeps failing every request
    try:
        with pytest.raises(Cooldown) as exc:  # Cooldown: no attempt spent
            await rig.mine.run(item("vid00000001"), rig.ctx)
    finally:
        await rig.runtime.close()
    assert exc.value.kind == kind
    assert rig.runtime.outage.level == 1 and rig.runtime.outage.kind == kind
    assert "(the video waits, no attempt spent)" in str(exc.value)
    assert not [k for k, _ in rig.parts if k == "window"]  # nothing saved as failed


async def test_a_stalled_server_times_out_alike(data_dir: Path, api: str) -> None:
    async with FakeOllama() as fake:
        rig = rig_for(data_dir, [fake], api, request_timeout_s=1.0, window_attempts=1)
        fake.inject("stall", times=1000)
        try:
            with pytest.raises(Cooldown) as exc:
                await rig.mine.run(item("vid00000001"), rig.ctx)
        finally:
            await rig.runtime.close()
    assert exc.value.kind == "llm_timeout"


async def test_an_unreachable_server_alike(data_dir: Path, api: str) -> None:
    fake = FakeOllama()
    await fake.start()
    await fake.stop()  # a known port, nobody listening
    rig = rig_for(data_dir, [fake], api)
    try:
        with pytest.raises(Cooldown) as exc:
            await rig.mine.run(item("vid00000001"), rig.ctx)
    finally:
        await rig.runtime.close()
    assert exc.value.kind == "llm_unavailable"
    expected = "Ollama is unreachable" if api == "ollama" else "The LLM server is unreachable"
    assert str(exc.value).startswith(expected)


async def test_transient_failures_are_retried_alike(data_dir: Path, fake: FakeOllama,
                                                    api: str) -> None:
    rig = rig_for(data_dir, [fake], api)
    for fault, topic in (("503", 3), ("drop", 4), ("500", 8), ("garbage", 11)):
        fake.inject(fault, match=TOPICS[topic], title="WindowResult")
    out = await mine_once(rig)
    assert out.info["mine"]["failed_windows"] == 0 and not fake.faults


async def test_the_same_repair_request_on_either_api(data_dir: Path, fake: FakeOllama,
                                                     api: str) -> None:
    rig = rig_for(data_dir, [fake], api)
    fake.inject("malformed", match=TOPICS[5], title="WindowResult")
    out = await mine_once(rig)
    assert out.info["mine"]["failed_windows"] == 0
    repairs = [b for b in fake.chat_bodies() if "could not be used" in b["messages"][-1]["content"]]
    assert len(repairs) == 1
    assert repairs[0]["messages"][-2]["role"] == "assistant"
    assert "not valid JSON" in repairs[0]["messages"][-1]["content"]


async def test_the_request_s_own_problems_spend_an_attempt_alike(
        data_dir: Path, fake: FakeOllama, api: str) -> None:
    rig = rig_for(data_dir, [fake], api)
    fake.inject("schema", times=2, match=TOPICS[6], title="WindowResult")  # reply and repair
    try:
        with pytest.raises(Retryable) as exc:
            await rig.mine.run(item("vid00000001"), rig.ctx)
    finally:
        await rig.runtime.close()
    assert exc.value.kind == "mining_incomplete" and rig.runtime.outage.level == 0


async def test_an_answer_cut_at_answer_tokens_says_so_in_the_repair(
        data_dir: Path, fake: FakeOllama, api: str) -> None:
    rig = rig_for(data_dir, [fake], api, answer_tokens=64, num_ctx=4096)
    try:
        with pytest.raises(Retryable):
            await rig.mine.run(item("vid00000001"), rig.ctx)
    finally:
        await rig.runtime.close()
    failed = [v for (k, _), v in rig.parts.items() if k == "window" and v["status"] == "failed"]
    assert failed and all("cut off at 64 tokens, mine.answer_tokens" in v["error"]
                          for v in failed)


async def test_windows_fit_the_context_the_server_reports(data_dir: Path) -> None:
    # Ollama reports the model's trained context (/api/show): 1100 tokens, less than num_ctx
    async with FakeOllama(ctx_limit=1100) as fake:
        rig = rig_for(data_dir, [fake], "ollama", padded=True, window_tokens=5000,
                      overlap_tokens=20, answer_tokens=270, num_ctx=4096)
        out = await mine_once(rig)
    assert rig.runtime.context == 1100
    assert out.info["mine"]["failed_windows"] == 0 and out.info["mine"]["windows"] > 1
    assert all(r.status == 200 for r in fake.requests)  # none refused as too long
    doc = json.loads((data_dir / "mining" / "vid00000001.mined.json").read_text())
    assert doc["provenance"]["options"]["window_tokens"] < 5000


async def test_num_ctx_sizes_windows_where_an_openai_server_does_not_say(
        data_dir: Path) -> None:
    async with FakeOllama(ctx_limit=1100) as fake:
        rig = rig_for(data_dir, [fake], "openai", padded=True, window_tokens=5000,
                      overlap_tokens=20, answer_tokens=270, num_ctx=1100)
        out = await mine_once(rig)
    assert rig.runtime.context == 1100
    assert out.info["mine"]["failed_windows"] == 0 and out.info["mine"]["windows"] > 1
    assert all(r.status == 200 for r in fake.requests)


async def test_a_server_that_only_knows_json_object_is_asked_that_way(data_dir: Path) -> None:
    # llama-cpp-python's server: response_format {"type": "json_object", "schema": …} only
    async with FakeOllama(v1_formats=("json_object",)) as fake:
        rig = rig_for(data_dir, [fake], "openai")
        out = await mine_once(rig)
    assert out.info["mine"]["failed_windows"] == 0 and rig.runtime.outage.level == 0
    refused = [r for r in fake.requests if r.status == 500]  # as llama-cpp-python answers
    assert len(refused) == 1  # asked the standard way once, then the other way
    later = [r.body["response_format"] for r in served(fake, "openai")]
    assert all(f["type"] == "json_object" and f["schema"]["title"] for f in later)


async def test_host_tables_mix_apis_and_model_names(data_dir: Path) -> None:
    async with FakeOllama(parallel=2) as native, FakeOllama(parallel=2) as v1:
        hosts = [native.url, {"url": v1.url + "/v1", "api": "openai",
                              "model": "Qwen/Qwen2.5-7B-Instruct"}]
        rig = Rig(data_dir, [native], hosts=hosts)
        write_transcript(data_dir, "vid00000001", TOPICS)
        try:
            out = await rig.mine.run(item("vid00000001"), rig.ctx)
            await rig.evaluate.run(item("vid00000001"), rig.ctx)
        finally:
            await rig.runtime.close()
    assert out.info["mine"]["failed_windows"] == 0
    assert served(native, "ollama") and served(v1, "openai")
    assert {r.body["model"] for r in served(v1, "openai")} == {"Qwen/Qwen2.5-7B-Instruct"}
    assert {r.body["model"] for r in served(native, "ollama")} == {"qwen2.5:7b-instruct"}


async def test_server_info_on_either_api(fake: FakeOllama) -> None:
    clock = FakeClock()
    for api in APIS:
        llm = LLMClient([fake.url], clock, num_ctx=2048, keep_alive="5m", timeout_s=5,
                        api=api, model="qwen2.5:7b-instruct")
        try:
            (info,) = await llm.server_info("qwen2.5:7b-instruct")
        finally:
            await llm.close()
        assert info["api"] == api
        if api == "ollama":
            assert info["model_context"] == 32768 and info["size"]
        else:  # /v1/models lists it, says nothing of the context; no /props here
            assert info["served"] and info["context_length"] is None and info["slots"] is None
