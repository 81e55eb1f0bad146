from __future__ import annotations

import asyncio
import json

import httpx
import ollama

from ytpiped.mining.llm import ModelGate, error_kind_of, pick_host
from ytpiped.testing.clock import FakeClock


def test_pick_host_least_outstanding_among_up_hosts() -> None:
    hosts = ["a", "b", "c"]
    assert pick_host(hosts, {"a": 2, "b": 1, "c": 1}, {}, 0.0) == "b"
    assert pick_host(hosts, {"a": 0, "b": 1, "c": 1}, {"a": 10.0}, 5.0) == "b"
    assert pick_host(hosts, {"a": 0}, {"a": 10.0, "b": 7.0, "c": 9.0}, 5.0) == "b"
    assert pick_host(hosts, {"a": 0}, {"a": 4.0}, 5.0) == "a"  # back up


def test_classify_maps_client_errors_to_kinds() -> None:
    req = httpx.Request("POST", "http://127.0.0.1/api/chat")
    assert error_kind_of(ollama.ResponseError("busy", 503)) == "llm_busy"
    assert error_kind_of(ollama.ResponseError("nope", 404)) == "llm_model_missing"
    assert error_kind_of(ollama.ResponseError("boom", 500)) == "llm_error"
    assert error_kind_of(ollama.ResponseError("invalid format", 400)) == "llm_bad_request"
    for code in (400, 500):  # Ollama's runner and llama.cpp word it differently
        assert error_kind_of(ollama.ResponseError("input exceeds context length", code)) == \
            "llm_context_too_long"
    assert error_kind_of(ollama.ResponseError(
        "the request exceeds the available context size", 400)) == "llm_context_too_long"
    assert error_kind_of(ConnectionError("refused")) == "llm_unavailable"
    assert error_kind_of(httpx.ConnectError("x", request=req)) == "llm_unavailable"
    assert error_kind_of(httpx.ReadTimeout("x", request=req)) == "llm_timeout"
    assert error_kind_of(httpx.RemoteProtocolError("x", request=req)) == "llm_disconnected"
    assert error_kind_of(json.JSONDecodeError("bad", "x", 0)) == "llm_bad_response"
    assert error_kind_of(ValueError("other")) is None


async def test_model_gate_groups_requests_by_model() -> None:
    clock = FakeClock()
    gate = ModelGate(clock, switch_after_s=10.0)
    order: list[str] = []
    await gate.acquire("mine")  # a mining request runs
    ev = [asyncio.ensure_future(gate.acquire("eval")) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(f.done() for f in ev)
    await gate.acquire("mine")  # same model still goes ahead (eval not overdue)
    order.append("mine")
    clock.advance(11.0)
    late = asyncio.ensure_future(gate.acquire("mine"))  # eval overdue: mining waits
    await asyncio.sleep(0)
    assert not late.done()
    gate.release()
    gate.release()
    await asyncio.sleep(0)
    assert all(f.done() for f in ev) and not late.done() and gate.current == "eval"
    gate.release()
    gate.release()
    await asyncio.sleep(0)
    assert late.done() and gate.current == "mine"
    assert gate.switches == 2
    gate.release()
    assert gate.active == 0


async def test_model_gate_free_switch_when_idle_and_cancel_safe() -> None:
    gate = ModelGate(FakeClock(), switch_after_s=10.0)
    async with gate.use("a"):
        waiter = asyncio.ensure_future(gate.acquire("b"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert gate.active == 0
    async with gate.use("b"):
        assert gate.current == "b"
    assert gate.active == 0
