"""The mine and evaluate stages against FakeOllama over real HTTP (official ollama client)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.mining_ctx import DictContext, item, write_transcript
from tests.waiting import until
from ytpiped import config
from ytpiped.clock import SystemClock
from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.mining import prompts
from ytpiped.mining.runner import Runtime
from ytpiped.mining.schema import MAX_RANKED
from ytpiped.mining.stale import read_output, staleness
from ytpiped.stages.evaluate import EvaluateStage
from ytpiped.stages.mine import MAX_SPLITS, MineStage
from ytpiped.testing import fake_answers
from ytpiped.testing.fake_ollama import CHAT_PATHS, FakeOllama

TOPICS = ["Solar panels convert sunlight into electricity.",
          "The price of solar power fell by ninety percent in ten years.",
          "Cheap energy will change how cities are built.",
          "The ocean absorbs a quarter of the carbon dioxide that humans emit.",
          "Warmer water holds less oxygen than cold water does.",
          "Coral reefs are dying because the ocean is getting warmer.",
          "Coffee contains caffeine, which blocks adenosine in the brain.",
          "Drinking coffee late in the day reduces deep sleep.",
          "Most people should stop drinking coffee after noon.",
          "Sleep is when the brain stores new memories.",
          "Students who sleep after learning remember more the next day.",
          "A short walk increases blood flow to the hippocampus.",
          "Stress hormones make it harder to recall facts.",
          "Calm practice before an exam helps people remember.",
          "Wind turbines produce more power at higher altitudes.",
          "Batteries store surplus electricity for the night.",
          "Glaciers in the Alps have lost half their volume.",
          "Rising seas threaten coastal towns around the world.",
          "Tea has less caffeine than a cup of filter coffee.",
          "Naps shorter than twenty minutes avoid grogginess.",
          "Reading on paper improves recall compared with screens.",
          "Spaced repetition beats cramming for long term learning.",
          "Electric buses are quieter than diesel buses.",
          "Heat pumps move heat instead of burning fuel."]


def settings(data_dir: Path, hosts: list[str], **mine: Any) -> config.Settings:
    flags: dict[str, Any] = {"data_dir": str(data_dir), "mine.hosts": hosts,
                             "mine.window_tokens": 100, "mine.overlap_tokens": 20,
                             "mine.num_ctx": 4096, "mine.retry_base_s": 0.01,
                             "mine.request_timeout_s": 5.0}
    flags.update({f"mine.{k}": v for k, v in mine.items()})
    return config.load(flags=flags)


class Rig:
    def __init__(self, data_dir: Path, fakes: list[FakeOllama], **mine: Any) -> None:
        self.data_dir = data_dir
        self.fakes = fakes
        hosts = mine.pop("hosts", None) or [f.url for f in fakes]
        self.settings = settings(data_dir, hosts, **mine)
        self.runtime = Runtime.from_config(self.settings.mine, SystemClock())
        self.parts: dict[tuple[str, int], Any] = {}
        self.ctx = DictContext(self.settings, SystemClock(), data_dir, self.parts)
        self.mine = MineStage(self.runtime)
        self.evaluate = EvaluateStage(self.runtime)

    def window_requests(self, fake: FakeOllama | None = None) -> list[dict[str, Any]]:
        return [b for b in (fake or self.fakes[0]).chat_bodies()
                if b.get("format", {}).get("title") == "WindowResult"]


def claims_answered(*fakes: FakeOllama) -> list[str]:
    """The claims FakeOllama's window answers held, each once, sorted: one per sentence of
    each window it answered, up to the schema's MAX_CLAIMS a window (a window of seven
    sentences leaves its last one out; with overlap, the next window may still hold it)."""
    texts: set[str] = set()
    for fake in fakes:
        served = [r for r in fake.requests if r.path in CHAT_PATHS]
        for rec, body in zip(served, fake.chat_bodies(), strict=True):
            if rec.status == 200 and (body.get("format") or {}).get("title") == "WindowResult":
                prompt = fake_answers.conversation_text(body.get("messages") or [])
                window = prompts.between(prompt, prompts.TRANSCRIPT_OPEN,
                                         prompts.TRANSCRIPT_CLOSE) or ""
                texts.update(c["text"] for c in fake_answers.window_answer(window)["claims"])
    return sorted(texts)


def evaluation_requests(fake: FakeOllama) -> int:
    return sum(1 for b in fake.chat_bodies() if b["format"]["title"] == "Evaluation")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(parallel=2, latency_s=0.005) as f:
        yield f


@pytest.fixture
async def rig(data_dir: Path, fake: FakeOllama) -> AsyncIterator[Rig]:
    r = Rig(data_dir, [fake])
    write_transcript(data_dir, "vid00000001", TOPICS)
    yield r
    await r.runtime.close()


async def test_mine_then_evaluate_writes_ranked_claims_with_timestamps(rig: Rig,
                                                                      fake: FakeOllama) -> None:
    out = await rig.mine.run(item("vid00000001"), rig.ctx)
    windows = out.info["mine"]["windows"]
    assert windows >= 3 and out.info["mine"]["failed_windows"] == 0
    assert len(rig.window_requests()) == windows
    await rig.evaluate.run(item("vid00000001"), rig.ctx)
    doc = json.loads((rig.data_dir / "mining" / "vid00000001.json").read_text())
    texts = [c["text"] for c in doc["claims"]]
    # every claim once (overlaps deduplicated), nearly every sentence
    assert sorted(texts) == claims_answered(fake) and len(texts) >= len(TOPICS) - 4
    assert any(len(c["windows"]) > 1 for c in doc["claims"])
    for c in doc["claims"]:
        i = TOPICS.index(c["text"])
        assert (c["start"], c["end"]) == (i * 5.0, (i + 1) * 5.0)
        assert c["rank"] is not None and 1 <= c["importance"] <= 10
    assert doc["evaluation"]["status"] == "ok" and doc["evaluation"]["summary"]
    prov = doc["provenance"]
    assert prov["model"] == "qwen2.5:7b-instruct"
    assert prov["prompt_version"] == prompts.MINE_PROMPT_VERSION
    assert prov["eval_prompt_version"] == prompts.EVAL_PROMPT_VERSION
    assert staleness(doc, rig.settings.mine) is None
    assert prov["options"]["num_ctx"] == 4096 and prov["options"]["temperature"] == 0
    bodies = fake.chat_bodies()
    assert bodies[0]["format"]["title"] == "EpisodeSummary"
    summary = doc["summary"]
    # prefix reuse: every window request starts with the same message, byte for byte,
    # holding the summary; only the last message (the window) differs
    prefixes = {json.dumps(b["messages"][:-1]) for b in rig.window_requests()}
    assert len(prefixes) == 1 and summary in rig.window_requests()[0]["messages"][0]["content"]
    assert all(b["messages"][-1]["content"].startswith("Window: ")
               and "Episode summary" not in b["messages"][-1]["content"]
               for b in rig.window_requests())
    # tokens as the server counted them: per window, per video, evaluation added
    served = [r for r in fake.requests if r.path == "/api/chat"]
    assert doc["tokens"]["prompt"] == sum(r.prompt_tokens for r in served)
    assert doc["tokens"]["completion"] == sum(r.completion_tokens for r in served)
    evaluation = [r for r in served if r.body["format"]["title"] == "Evaluation"]
    assert doc["tokens"]["evaluate"] == {"prompt": evaluation[0].prompt_tokens,
                                         "completion": evaluation[0].completion_tokens}
    assert len(doc["tokens"]["windows"]) == windows
    window_parts = [v for (k, _), v in rig.parts.items() if k == "window"]
    assert sum(p["tokens"]["prompt"] for p in window_parts) == sum(
        r.prompt_tokens for r in served if r.body["format"]["title"] == "WindowResult")
    for b in bodies:  # every request: num_ctx, a JSON schema, keep_alive, temperature 0
        assert b["options"]["num_ctx"] == 4096 and b["options"]["temperature"] == 0
        assert b["format"]["type"] == "object" and b["format"]["properties"]
        assert b["keep_alive"] == "30m" and b["stream"] is False
    assert not list((rig.data_dir / "mining").glob(".*"))  # no temp files left


async def test_invalid_json_gets_one_repair_request(rig: Rig, fake: FakeOllama) -> None:
    fake.inject("malformed", match=TOPICS[5], title="WindowResult")
    out = await rig.mine.run(item("vid00000001"), rig.ctx)
    assert out.info["mine"]["failed_windows"] == 0
    repaired = [p for (k, _), p in rig.parts.items() if k == "window" and p["repaired"]]
    assert len(repaired) == 1 and repaired[0]["status"] == "ok"
    repair_bodies = [b for b in fake.chat_bodies()
                     if "could not be used" in b["messages"][-1]["content"]]
    assert len(repair_bodies) == 1
    assert "not valid JSON" in repair_bodies[0]["messages"][-1]["content"]
    assert repair_bodies[0]["messages"][-2]["role"] == "assistant"


async def test_window_still_invalid_after_repair_costs_an_attempt_then_only_it_is_mined(
        rig: Rig, fake: FakeOllama) -> None:
    fake.inject("schema", times=2, match=TOPICS[6], title="WindowResult")
    with pytest.raises(Retryable) as exc:
        await rig.mine.run(item("vid00000001"), rig.ctx)
    assert exc.value.kind == "mining_incomplete"
    assert str(exc.value).startswith(
        "1 of 4 windows could not be mined (invalid LLM output after repair)")
    failed = [p for (k, _), p in rig.parts.items() if k == "window" and p["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["raw"] == '{"claims": "not a list", "people": 3}'
    assert "does not match the schema" in failed[0]["error"]
    assert rig.ctx.events[0][:2] == ("window_failed", "llm_invalid_json")
    assert not (rig.data_dir / "mining" / "vid00000001.mined.json").exists()
    n = len(rig.window_requests())
    out = await rig.mine.run(item("vid00000001", attempts=1), rig.ctx)  # the next attempt
    assert out.info["mine"]["mined_now"] == 1 and len(rig.window_requests()) == n + 1
    assert out.info["mine"]["failed_windows"] == 0
    mined = json.loads((rig.data_dir / "mining" / "vid00000001.mined.json").read_text())
    assert sorted(c["text"] for c in mined["claims"]) == claims_answered(*rig.fakes)


async def test_every_reply_invalid_fails_the_video_once_its_attempts_are_used(
        rig: Rig, fake: FakeOllama) -> None:
    fake.inject("malformed", times=1000, title="WindowResult")
    last = rig.settings.download.max_attempts - 1  # attempts already spent
    with pytest.raises(Retryable) as exc:
        await rig.mine.run(item("vid00000001", attempts=last - 1), rig.ctx)
    assert exc.value.kind == "mining_incomplete"
    with pytest.raises(Permanent) as final:
        await rig.mine.run(item("vid00000001", attempts=last), rig.ctx)
    assert final.value.kind == "mining_incomplete"
    assert str(final.value).startswith("4 of 4 windows could not be mined (invalid LLM "
                                       "output after repair) after 5 attempts")
    assert "ytpiped retry --kind mining_incomplete" in str(final.value)
    assert not (rig.data_dir / "mining" / "vid00000001.mined.json").exists()
    assert [e[0] for e in rig.ctx.events] == ["window_failed"] * 8


async def test_a_prompt_longer_than_the_context_fails_its_window_not_the_server(
        rig: Rig, fake: FakeOllama) -> None:
    # too long on every try, even halved MAX_SPLITS times: the window fails, nothing is cut
    fake.inject("context", times=100, match=TOPICS[6], title="WindowResult")
    with pytest.raises(Retryable) as exc:
        await rig.mine.run(item("vid00000001"), rig.ctx)
    assert exc.value.kind == "mining_incomplete"
    assert "1 of 4 windows could not be mined (prompt longer than mine.num_ctx" in \
        str(exc.value)
    assert sum(TOPICS[6] in b["messages"][-1]["content"]
               for b in rig.window_requests()) == 1 + MAX_SPLITS
    assert rig.runtime.outage.level == 0  # no pause: the server is fine
    assert rig.ctx.events[0][:2] == ("window_failed", "llm_context_too_long")


async def test_a_window_too_long_for_the_context_is_mined_in_halves(
        rig: Rig, fake: FakeOllama) -> None:
    fake.inject("context", match=TOPICS[6], title="WindowResult")
    out = await rig.mine.run(item("vid00000001"), rig.ctx)
    assert out.info["mine"]["failed_windows"] == 0
    split = [v for (k, _), v in rig.parts.items() if k == "window" and v.get("pieces")]
    assert len(split) == 1 and split[0]["pieces"] == 2 and split[0]["status"] == "ok"
    asked = [b["messages"][-1]["content"] for b in rig.window_requests()]
    halves = [a for a in asked if TOPICS[6] in a][1:]
    assert len(halves) == 1  # the half holding it; the other half without it
    doc = json.loads((rig.data_dir / "mining" / "vid00000001.mined.json").read_text())
    assert sorted(c["text"] for c in doc["claims"]) == claims_answered(fake)  # nothing lost
    assert TOPICS[6] in claims_answered(fake)
    assert rig.ctx.events == []


async def test_a_request_failing_while_others_are_answered_is_its_own_problem(
        rig: Rig, fake: FakeOllama) -> None:
    # a prompt that crashes the runner on every try, while the other windows are served
    fake.inject("500", times=4, match=TOPICS[6], title="WindowResult")
    with pytest.raises(Retryable) as exc:
        await rig.mine.run(item("vid00000001"), rig.ctx)
    assert exc.value.kind == "mining_incomplete"
    assert "1 of 4 windows could not be mined (llm_error on each try while other requests " \
        "were answered)" in str(exc.value)
    assert not fake.faults and rig.runtime.outage.level == 0  # no pause for everyone
    assert rig.ctx.events[0][:2] == ("window_failed", "llm_error")


async def test_503_500_disconnect_and_stall_are_retried(data_dir: Path) -> None:
    async with FakeOllama(parallel=2) as f:
        rig = Rig(data_dir, [f], request_timeout_s=1.0)
        write_transcript(data_dir, "vid00000001", TOPICS)
        f.inject("503", match=TOPICS[3], title="WindowResult")
        f.inject("drop", match=TOPICS[4], title="WindowResult")
        f.inject("500", match=TOPICS[8], title="WindowResult")
        f.inject("stall", match=TOPICS[11], title="WindowResult")
        try:
            out = await rig.mine.run(item("vid00000001"), rig.ctx)
        finally:
            await rig.runtime.close()
    assert out.info["mine"]["failed_windows"] == 0
    assert not f.faults  # every fault was hit
    assert rig.runtime.pool.overloads >= 2  # the 503 and the timeout
    mined = json.loads((data_dir / "mining" / "vid00000001.mined.json").read_text())
    assert sorted(c["text"] for c in mined["claims"]) == claims_answered(*rig.fakes)


async def test_server_down_pauses_mining_doubling_then_resumes_when_up(data_dir: Path) -> None:
    f = FakeOllama()
    await f.start()
    await f.stop()  # a known port, nobody listening
    rig = Rig(data_dir, [f], unavailable_backoff_s=0.05, max_unavailable_backoff_s=0.15)
    write_transcript(data_dir, "vid00000001", TOPICS)
    try:
        before = rig.ctx.clock.now()
        with pytest.raises(Cooldown) as exc:
            await rig.mine.run(item("vid00000001"), rig.ctx)
        assert exc.value.kind == "llm_unavailable"
        assert str(exc.value).startswith("Ollama is unreachable: http://127.0.0.1:")
        until = rig.runtime.outage.until
        assert until >= before + 0.05
        shown = rig.ctx.published[-1]
        assert (shown["llm"], shown["cooldown_kind"]) == ("cooldown", "llm_unavailable")
        assert shown["cooldown_until"] == until and shown["alerts"]
        await rig.mine.gate(rig.ctx)  # returns when the pause is over
        before = rig.ctx.clock.now()
        with pytest.raises(Cooldown):
            await rig.mine.run(item("vid00000001"), rig.ctx)
        assert rig.runtime.outage.until >= before + 0.1  # still down: the pause doubled
        assert not rig.parts
        await f.start()
        rig.runtime.llm.down_until.clear()
        await rig.mine.gate(rig.ctx)
        out = await rig.mine.run(item("vid00000001"), rig.ctx)
        assert out.info["mine"]["failed_windows"] == 0 and rig.runtime.outage.level == 0
        assert rig.ctx.published[-1]["llm"] == "ok" and "alerts" not in rig.ctx.published[-1]
    finally:
        await rig.runtime.close()
        await f.stop()


async def test_restart_mid_video_resumes_at_the_next_window(rig: Rig, fake: FakeOllama) -> None:
    fake.inject("503", times=4, match=TOPICS[-1], title="WindowResult")  # last window refused
    with pytest.raises(Cooldown) as exc:
        await rig.mine.run(item("vid00000001"), rig.ctx)
    assert exc.value.kind == "llm_busy"  # the server's state: no attempt spent
    saved = {i for (k, i) in rig.parts if k == "window"}
    total = len(rig.window_requests())
    assert saved  # finished windows kept
    rt2 = Runtime.from_config(rig.settings.mine, SystemClock())  # as after a daemon restart
    try:
        out = await MineStage(rt2).run(item("vid00000001"), rig.ctx)
    finally:
        await rt2.close()
    windows = out.info["mine"]["windows"]
    assert out.info["mine"]["mined_now"] == windows - len(saved)
    assert len(rig.window_requests()) == total + windows - len(saved)
    assert sum(1 for b in fake.chat_bodies() if b["format"]["title"] == "EpisodeSummary") == 1


async def test_stale_prompt_version_is_mined_again(rig: Rig, fake: FakeOllama) -> None:
    await rig.mine.run(item("vid00000001"), rig.ctx)
    rig.parts[("window", 1)]["prompt_version"] = "old"
    n = len(rig.window_requests())
    out = await rig.mine.run(item("vid00000001"), rig.ctx)
    assert out.info["mine"]["mined_now"] == 1 and len(rig.window_requests()) == n + 1


async def test_new_evaluation_prompt_redoes_only_the_evaluation(
        rig: Rig, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    await rig.mine.run(item("vid00000001"), rig.ctx)
    await rig.evaluate.run(item("vid00000001"), rig.ctx)
    monkeypatch.setattr(prompts, "EVAL_PROMPT_VERSION", "evalprompt02")
    stale = staleness(read_output(rig.data_dir, "vid00000001"), rig.settings.mine)
    assert stale is not None and not stale.windows and "evaluation prompt" in stale.reason
    windows, evals = len(rig.window_requests()), evaluation_requests(fake)
    out = await rig.mine.run(item("vid00000001"), rig.ctx)  # what `remine` sets off
    await rig.evaluate.run(item("vid00000001"), rig.ctx)
    assert out.info["mine"]["mined_now"] == 0 and len(rig.window_requests()) == windows
    assert evaluation_requests(fake) == evals + 1
    assert staleness(read_output(rig.data_dir, "vid00000001"), rig.settings.mine) is None


async def test_new_mining_prompt_mines_every_window_again(
        rig: Rig, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await rig.mine.run(item("vid00000001"), rig.ctx)
    await rig.evaluate.run(item("vid00000001"), rig.ctx)
    monkeypatch.setattr(prompts, "MINE_PROMPT_VERSION", "mineprompt02")
    stale = staleness(read_output(rig.data_dir, "vid00000001"), rig.settings.mine)
    assert stale is not None and stale.windows and "mining prompt" in stale.reason
    out = await rig.mine.run(item("vid00000001"), rig.ctx)
    assert out.info["mine"]["mined_now"] == first.info["mine"]["windows"]


async def test_two_hosts_share_load(data_dir: Path) -> None:
    async with FakeOllama(parallel=2, latency_s=0.02) as a, \
            FakeOllama(parallel=2, latency_s=0.02) as b:
        rig = Rig(data_dir, [a, b], workers=4, window_tokens=100, overlap_tokens=0)
        write_transcript(data_dir, "vid00000001", TOPICS * 3)
        try:
            await rig.mine.run(item("vid00000001"), rig.ctx)
        finally:
            await rig.runtime.close()
    na, nb = len(rig.window_requests(a)), len(rig.window_requests(b))
    assert na + nb >= 10
    assert min(na, nb) >= 0.3 * (na + nb)
    assert max(a.stats.max_active, b.stats.max_active) == 2


async def test_evaluations_are_grouped_by_model(data_dir: Path) -> None:
    async with FakeOllama(parallel=2, latency_s=0.05, load_s=0.01) as f:
        rig = Rig(data_dir, [f], eval_model="big:70b", model_switch_s=30.0, workers=2,
                  window_tokens=100, overlap_tokens=0)
        write_transcript(data_dir, "vid00000001", TOPICS * 2)
        for vid in ("vid00000002", "vid00000003"):
            write_transcript(data_dir, vid, TOPICS[:3])
            await MineStage(rig.runtime).run(item(vid), DictContext(
                rig.settings, SystemClock(), data_dir, {}))
        seen_before = len(f.stats.models_seen)
        gate = rig.runtime.llm.gate
        try:
            # a mining request in flight (the test's own) until both evaluations queue behind
            # it, however long reading their files takes on a loaded machine; the other
            # mining requests go on meanwhile
            async with gate.use(rig.settings.mine.model):
                work = asyncio.gather(
                    rig.mine.run(item("vid00000001"), rig.ctx),
                    *(rig.evaluate.run(item(v), DictContext(rig.settings, SystemClock(),
                                                            data_dir, {}))
                      for v in ("vid00000002", "vid00000003")))
                await until(lambda: gate.waiting("big:70b") == 2, "both evaluations queued",
                            task=work)
            await work
        finally:
            await rig.runtime.close()
    seq = f.stats.models_seen[seen_before:]
    changes = sum(1 for x, y in itertools.pairwise(seq) if x != y)
    assert seq.count("big:70b") == 2
    assert changes <= 2  # both evaluations ran together, not interleaved with mining
    for v in ("vid00000002", "vid00000003"):
        doc = json.loads((data_dir / "mining" / f"{v}.json").read_text())
        assert doc["provenance"]["eval_model"] == "big:70b"


async def test_missing_transcript_is_permanent(rig: Rig) -> None:
    with pytest.raises(Permanent) as exc:
        await rig.mine.run(item("nosuchvideo"), rig.ctx)
    assert exc.value.kind == "transcript_missing"
    with pytest.raises(Permanent):
        await rig.evaluate.run(item("nosuchvideo"), rig.ctx)


async def test_auto_workers_sized_from_server(rig: Rig, fake: FakeOllama) -> None:
    await rig.mine.run(item("vid00000001"), rig.ctx)
    assert rig.runtime.sized and rig.runtime.pool.history[1] == 2  # fake serves 2 slots
    assert any(r.path == "/api/ps" for r in fake.requests)
    assert rig.ctx.published[-1]["workers"] >= 1


@pytest.mark.parametrize("part_fails", [False, True])
async def test_more_claims_than_one_answer_ranks_are_ranked_in_parts(
        rig: Rig, fake: FakeOllama, part_fails: bool) -> None:
    """61 claims: three requests of at most MAX_RANKED claims each (numbered as in the
    video), the first with the summary; every claim ranked, importance decreasing with
    rank. A part whose answer stays invalid leaves only its own claims unranked."""
    n = 61
    claims = [{"text": f"Claim {i} is that {TOPICS[i % len(TOPICS)].lower()}",
               "type": "factual", "evidence": TOPICS[i % len(TOPICS)], "confidence": 0.9,
               "start": float(i), "end": float(i + 1), "windows": [0]} for i in range(n)]
    src = rig.data_dir / "mining" / "vidparts001.mined.json"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(json.dumps({"claims": claims, "summary": "A talk of many claims.",
                               "people": [], "concepts": []}))
    if part_fails:
        fake.inject("schema", times=2, title="Ranking")  # the second part, and its repair
    await rig.evaluate.run(item("vidparts001"), rig.ctx)
    bodies = [b for b in fake.chat_bodies() if b["format"]["title"] in ("Evaluation",
                                                                         "Ranking")]
    asked = [(b["format"]["title"], re.findall(r"^\[(\d+)\]", b["messages"][1]["content"],
                                              re.M)) for b in bodies]
    if part_fails:
        asked = [a for a, b in zip(asked, bodies, strict=True)
                 if "could not be used" not in b["messages"][-1]["content"]]
    assert [(title, int(ids[0]), int(ids[-1])) for title, ids in asked] == [
        ("Evaluation", 0, 20), ("Ranking", 21, 40), ("Ranking", 41, 60)]
    assert all(len(ids) <= MAX_RANKED for _, ids in asked)
    assert bodies[0]["messages"][0]["content"] == prompts.EVAL_SYSTEM
    assert bodies[1]["messages"][0]["content"] == prompts.RANK_SYSTEM
    doc = json.loads((rig.data_dir / "mining" / "vidparts001.json").read_text())
    ev = doc["evaluation"]
    assert ev["status"] == "ok" and ev["summary"] and ev["parts"] == 3
    assert ev["unranked_parts"] == int(part_fails)
    unranked = {int(c["text"].split()[1]) for c in doc["claims"] if c["rank"] is None}
    assert unranked == (set(range(21, 41)) if part_fails else set())
    ranked = [c for c in doc["claims"] if c["rank"] is not None]
    assert [c["rank"] for c in ranked] == list(range(1, len(ranked) + 1))
    assert [c["importance"] for c in ranked] == sorted(
        (c["importance"] for c in ranked), reverse=True)
    served = [r for r in fake.requests if r.path == "/api/chat"]
    assert doc["tokens"]["evaluate"]["prompt"] == sum(r.prompt_tokens for r in served)
