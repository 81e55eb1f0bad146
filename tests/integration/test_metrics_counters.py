"""The counters and histograms that the worker and the LLM client feed, seen on /metrics of
a running daemon and in the registry after real requests to FakeOllama."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ytpiped import config, control, metrics
from ytpiped.clock import SystemClock
from ytpiped.daemon import Daemon
from ytpiped.mining.llm import LLMClient, LLMError
from ytpiped.mining.schema import WindowResult, json_schema
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.stages import FakeStage, fake_pipeline

Key = tuple[str, tuple[tuple[str, str], ...]]


def parse(text: str) -> dict[Key, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def scrape_registry() -> dict[Key, float]:
    return parse(metrics.exposition({"videos": {"by_state": {}}, "failures": {"by_kind": {}},
                                     "stages": {}})[0].decode())


def delta(after: dict[Key, float], before: dict[Key, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_stage_outcomes_and_durations_on_the_daemons_metrics(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = ["ctrvideo001", "ctrvideo002", "ctrvideo003"]
    s = SqliteDB(db_path(data), now=0)
    s.add_videos([NewVideo(i, f"https://example.org/{i}", "video") for i in ids], now=0)
    s.close()
    settings = config.load(flags={"data_dir": str(data), "daemon.poll_interval_s": 0.05,
                                  "daemon.retry_base_s": 0.01, "daemon.retry_max_s": 0.02,
                                  "download.max_attempts": 2})
    stages = [FakeStage(st.name, fail={"analyze:ctrvideo002": "permanent",
                                       "transcribe:ctrvideo003": "retryable"})
              for st in fake_pipeline(settings, SystemClock())]
    before = scrape_registry()
    outcomes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    d = Daemon(settings, stages=stages, environ={},
               on_outcome=lambda stage, event, vid, kind: outcomes.put_nowait((stage, event)))
    task = asyncio.create_task(d.serve())
    ended = 0  # videos done (evaluate completed) or failed for good
    async with asyncio.timeout(30):
        while ended < len(ids):
            stage, event = await outcomes.get()
            ended += event == "failed" or (stage, event) == ("evaluate", "completed")
        got = parse((await control.fetch(data, "/metrics") or b"").decode())
    d.stop.set()
    assert await task == 0
    assert delta(got, before, "ytpiped_stage_completed_total", stage="download") == 3
    assert delta(got, before, "ytpiped_stage_failed_total", stage="analyze",
                 kind="fake_permanent") == 1
    assert delta(got, before, "ytpiped_stage_retries_total", stage="transcribe",
                 kind="fake_transient") == 1
    # the second try of ctrvideo003 is its last (max_attempts 2): failed for good
    assert delta(got, before, "ytpiped_stage_failed_total", stage="transcribe",
                 kind="fake_transient") == 1
    assert delta(got, before, "ytpiped_stage_completed_total", stage="evaluate") == 1
    assert delta(got, before, "ytpiped_stage_duration_seconds_count", stage="download",
                 outcome="completed") == 3
    assert delta(got, before, "ytpiped_stage_duration_seconds_bucket", stage="download",
                 outcome="completed", le="+Inf") == 3


async def test_llm_requests_latency_and_tokens() -> None:
    schema = json_schema(WindowResult)
    msgs = [{"role": "user", "content": "Solar panels convert sunlight into electricity."}]
    model = "qwen2.5:7b-instruct"
    before = scrape_registry()
    async with FakeOllama() as fake:
        llm = LLMClient([fake.url], FakeClock(), num_ctx=2048, keep_alive="5m", timeout_s=5)
        try:
            reply = await llm.chat_json(model, msgs, schema)
            fake.inject("503")
            try:
                await llm.chat_json(model, msgs, schema)
            except LLMError as exc:
                assert exc.kind == "llm_busy"
        finally:
            await llm.close()
    after = scrape_registry()
    assert delta(after, before, "ytpiped_llm_requests_total", model=model, result="ok") == 1
    assert delta(after, before, "ytpiped_llm_requests_total", model=model,
                 result="llm_busy") == 1
    assert delta(after, before, "ytpiped_llm_request_duration_seconds_count", model=model) == 1
    assert reply.prompt_tokens and reply.eval_tokens
    assert delta(after, before, "ytpiped_llm_tokens_total", model=model,
                 type="prompt") == reply.prompt_tokens
    assert delta(after, before, "ytpiped_llm_tokens_total", model=model,
                 type="completion") == reply.eval_tokens
