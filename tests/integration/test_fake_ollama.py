"""FakeOllama over real HTTP, spoken to by the official ollama client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from tests.waiting import until
from ytpiped.mining import prompts
from ytpiped.mining.pool import server_slots
from ytpiped.mining.schema import WindowResult, json_schema
from ytpiped.testing.fake_ollama import FakeOllama

TEXT = "Solar panels convert sunlight into electricity. Cheap energy will change cities."
MSGS = prompts.window_messages("t", "c", "", TEXT, 0.0, 10.0)
SCHEMA = json_schema(WindowResult)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(parallel=2) as f:
        yield f


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[ollama.AsyncClient]:
    c = ollama.AsyncClient(host=fake.url, timeout=5)
    yield c
    await c.close()  # type: ignore[no-untyped-call]


async def test_chat_non_streaming_answers_from_the_window(fake: FakeOllama,
                                                         client: ollama.AsyncClient) -> None:
    r = await client.chat(model="qwen2.5:7b-instruct", messages=MSGS, format=SCHEMA,
                          stream=False, options={"num_ctx": 2048, "temperature": 0})
    res = WindowResult.model_validate_json(r.message.content or "")
    assert [c.evidence for c in res.claims] == [
        "Solar panels convert sunlight into electricity.", "Cheap energy will change cities."]
    assert res.claims[1].type == "forecast"
    assert r.done and r.prompt_eval_count and r.eval_count
    body = fake.chat_bodies()[0]
    assert body["options"]["num_ctx"] == 2048 and body["format"]["title"] == "WindowResult"


async def test_streaming_chat_and_generate(client: ollama.AsyncClient) -> None:
    parts = [p async for p in await client.chat(model="m", messages=MSGS, format=SCHEMA,
                                                stream=True)]
    assert len(parts) > 2 and parts[-1].done and not parts[0].done
    content = "".join(p.message.content or "" for p in parts)
    assert WindowResult.model_validate_json(content).claims
    g = await client.generate(model="m", prompt="hello", stream=False)
    assert g.response and g.done
    gs = [p async for p in await client.generate(model="m", prompt="hello", stream=True)]
    assert gs[-1].done


async def test_metadata_endpoints(fake: FakeOllama, client: ollama.AsyncClient) -> None:
    tags = await client.list()
    assert [m.model for m in tags.models] == ["qwen2.5:7b-instruct"]
    ps = await client.ps()
    show = await client.show("qwen2.5:7b-instruct")
    info = {"size": ps.models[0].size, "weights": tags.models[0].size,
            "context_length": ps.models[0].context_length, "model_info": show.modelinfo}
    assert server_slots(info) == 2
    async with httpx.AsyncClient() as h:
        assert (await h.get(f"{fake.url}/api/version")).json()["version"]


async def test_queue_limit_answers_503() -> None:
    async with FakeOllama(parallel=1, max_queue=1) as f:
        c = ollama.AsyncClient(host=f.url, timeout=10)
        f.hold()  # the first request keeps its slot until all four have arrived
        try:
            calls = asyncio.gather(
                *(c.chat(model="m", messages=MSGS, stream=False) for _ in range(4)),
                return_exceptions=True)
            await until(lambda: f.stats.rejected_503 == 2 and f.stats.pending == 2,
                        "one request served, one queued, two refused", task=calls)
            f.release()
            results = await calls
        finally:
            await c.close()  # type: ignore[no-untyped-call]
    errors = [r for r in results if isinstance(r, ollama.ResponseError)]
    assert len(errors) == 2 and all(e.status_code == 503 for e in errors)
    assert f.stats.rejected_503 == 2 and f.stats.served == 2 and f.stats.max_active == 1


async def test_injected_faults(fake: FakeOllama, client: ollama.AsyncClient) -> None:
    fake.inject("500")
    with pytest.raises(ollama.ResponseError) as e500:
        await client.chat(model="m", messages=MSGS, stream=False)
    assert e500.value.status_code == 500
    fake.inject("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.chat(model="m", messages=MSGS, stream=False)
    fake.inject("malformed", match="Solar panels")
    r = await client.chat(model="m", messages=MSGS, format=SCHEMA, stream=False)
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.message.content or "")
    fake.inject("404")
    with pytest.raises(ollama.ResponseError) as e404:
        await client.chat(model="m", messages=MSGS, stream=False)
    assert e404.value.status_code == 404
    fake.inject("context")
    with pytest.raises(ollama.ResponseError) as ectx:
        await client.chat(model="m", messages=MSGS, stream=False)
    assert ectx.value.status_code == 400 and "context length" in ectx.value.error
    r = await client.chat(model="m", messages=MSGS, format=SCHEMA, stream=False)
    assert WindowResult.model_validate_json(r.message.content or "")  # faults used up
    with pytest.raises(ValueError, match="unknown fault"):
        fake.inject("explode")


async def test_stall_until_client_timeout() -> None:
    async with FakeOllama() as f:
        f.inject("stall")
        c = ollama.AsyncClient(host=f.url, timeout=0.2)
        try:
            with pytest.raises(httpx.ReadTimeout):
                await c.chat(model="m", messages=MSGS, stream=False)
        finally:
            await c.close()  # type: ignore[no-untyped-call]


async def test_restart_on_same_port() -> None:
    f = FakeOllama()
    await f.start()
    url = f.url
    c = ollama.AsyncClient(host=url, timeout=5)
    try:
        await f.stop()
        with pytest.raises(ConnectionError):
            await c.chat(model="m", messages=MSGS, stream=False)
        await f.start()
        assert f.url == url
        r = await c.chat(model="m", messages=MSGS, stream=False)
        assert r.done
    finally:
        await c.close()  # type: ignore[no-untyped-call]
        await f.stop()


async def test_model_swaps_counted_when_model_or_ctx_changes(fake: FakeOllama,
                                                            client: ollama.AsyncClient) -> None:
    for model, ctx in (("a", 1024), ("a", 1024), ("b", 1024), ("b", 2048)):
        await client.chat(model=model, messages=MSGS, stream=False, options={"num_ctx": ctx})
    assert fake.stats.swaps == 3  # preloaded -> a, a -> b, b ctx change
