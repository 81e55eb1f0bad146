"""`ytpiped doctor`'s LLM host checks on both APIs, against FakeOllama over HTTP: Ollama's
own API and the OpenAI-compatible one (its /v1), mixed in one `mine.hosts`."""

from __future__ import annotations

import socket
from pathlib import Path

from ytpiped import config, doctor
from ytpiped.testing.fake_ollama import FakeOllama


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


async def test_each_host_is_checked_with_the_api_it_speaks(data_dir: Path) -> None:
    async with FakeOllama() as fake:
        hosts = [fake.url,
                 {"url": fake.url + "/v1", "api": "openai"},
                 {"url": fake.url + "/v1", "api": "openai", "model": "Qwen/Qwen2.5-72B"},
                 {"url": f"http://127.0.0.1:{closed_port()}/v1", "api": "openai"}]
        # the same URL twice is one host: the third entry gets its own path
        hosts[2] = {**hosts[2], "url": fake.url + "/v1/"}
        settings = config.load(flags={"data_dir": str(data_dir), "mine.hosts": hosts,
                                      "mine.num_ctx": 4096})
        checks = await doctor.llm_hosts(settings)
    assert [c.status for c in checks] == ["ok", "ok", "fail", "fail"]
    assert "qwen2.5:7b-instruct pulled" in checks[0].detail
    assert "served (OpenAI API)" in checks[1].detail
    assert "not reported (the worker pool finds it)" in checks[1].detail
    assert "context not reported (mine.num_ctx, 4096" in checks[1].detail
    assert "does not serve Qwen/Qwen2.5-72B (it serves qwen2.5:7b-instruct" in checks[2].detail
    assert "set mine.model (or the host table's model)" in checks[2].fix
    assert "not reachable" in checks[3].detail and "correct mine.hosts" in checks[3].fix


async def test_a_server_context_below_num_ctx_is_a_warning(data_dir: Path) -> None:
    # vLLM reports its max_model_len in /v1/models
    async with FakeOllama(ctx_limit=2048, v1_reports_context=True) as fake:
        settings = config.load(flags={
            "data_dir": str(data_dir), "mine.num_ctx": 4096,
            "mine.hosts": [{"url": fake.url + "/v1", "api": "openai"}]})
        (check,) = await doctor.llm_hosts(settings)
    assert check.status == "warn" and "its context is 2048 tokens" in check.detail
    assert "lower mine.num_ctx to 2048" in check.fix
