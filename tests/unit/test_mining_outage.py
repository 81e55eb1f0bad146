"""The stage-wide LLM pause on a FakeClock: doubling up to a cap, joined by requests already
in flight, reset by the first answer; the mine and evaluate gates hold claims while it runs
and publish it once per change. And the decision for a video with failed windows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ytpiped import config
from ytpiped.errors import Permanent, Retryable
from ytpiped.mining.outage import Outage, pause_s
from ytpiped.mining.runner import Runtime
from ytpiped.stages.evaluate import EvaluateStage
from ytpiped.stages.mine import MineStage, incomplete
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.context import FakeContext


def test_pauses_double_up_to_the_cap() -> None:
    assert [pause_s(n, 30.0, 600.0) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]


def test_failures_in_flight_join_the_running_pause_then_the_next_one_doubles() -> None:
    o = Outage(30.0, 100.0)
    first = o.trip("llm_busy", "503", 1000.0)
    assert first is not None and (first.level, first.until, first.wait_s) == (1, 1030.0, 30.0)
    assert o.trip("llm_busy", "503", 1010.0) is None  # already paused: joins, no new pause
    assert o.trip("llm_timeout", "timeout", 1029.9) is None
    assert o.active(1029.9) and not o.active(1030.0)
    second = o.trip("llm_timeout", "timeout", 1031.0)  # the first try after it failed
    assert second is not None and (second.level, second.wait_s, second.kind) == \
        (2, 60.0, "llm_timeout")
    third = o.trip("llm_unavailable", "refused", 1100.0)
    assert third is not None and third.wait_s == 100.0  # capped
    assert o.recover(1150.0) == 150.0  # out since the first failure
    assert (o.level, o.active(1150.0), o.kind) == (0, False, None)
    assert o.recover(1151.0) is None  # nothing to recover from
    again = o.trip("llm_busy", "503", 1200.0)
    assert again is not None and again.level == 1  # a new outage starts small


def test_status_and_alert_show_the_pause() -> None:
    o = Outage(30.0, 600.0)
    assert o.status(0.0) == {"llm": "ok", "cooldown_kind": None, "cooldown_until": None,
                             "cooldown_level": 0, "cooldown_error": None}
    assert o.alert(0.0) is None
    o.trip("llm_busy", "http://h: server busy (status code: 503)", 100.0)
    st = o.status(110.0)
    assert (st["llm"], st["cooldown_kind"], st["cooldown_until"], st["cooldown_level"]) == \
        ("cooldown", "llm_busy", 130.0, 1)
    alert = o.alert(110.0)
    assert alert is not None and alert.startswith("Ollama is busy (HTTP 503) (llm_busy): "
                                                  "mining and evaluation paused until ")
    assert "no video loses an attempt" in alert and "server busy" in alert
    assert o.status(131.0)["llm"] == "probing" and o.alert(131.0) is None


async def test_wait_returns_at_the_end_of_the_pause_or_at_the_first_answer() -> None:
    clock = FakeClock()
    o = Outage(30.0, 600.0)
    o.trip("llm_busy", "503", clock.now())
    waiter = asyncio.ensure_future(o.wait(clock))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(29.0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(1.0)
    await asyncio.wait_for(waiter, 1.0)
    o.trip("llm_busy", "503", clock.now())
    waiter = asyncio.ensure_future(o.wait(clock))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    o.recover(clock.now())  # an answer came: no need to wait out the pause
    await asyncio.wait_for(waiter, 1.0)


@pytest.fixture
async def runtime(clock: FakeClock, settings: config.Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.from_config(settings.mine, clock)
    yield rt
    await rt.close()


async def test_mine_and_evaluate_gates_hold_claims_while_paused(
        clock: FakeClock, settings: config.Settings, runtime: Runtime) -> None:
    mine, evaluate = MineStage(runtime), EvaluateStage(runtime)
    mctx, ectx = FakeContext(settings, clock), FakeContext(settings, clock)
    await mine.gate(mctx)  # all well: open, nothing to publish
    await evaluate.gate(ectx)
    assert mctx.published == [] and ectx.published == []
    runtime.outage.trip("llm_busy", "server busy", clock.now())
    gates = [asyncio.ensure_future(mine.gate(mctx)), asyncio.ensure_future(evaluate.gate(ectx))]
    for _ in range(10):
        await asyncio.sleep(0)
    assert not any(g.done() for g in gates)
    assert mctx.published[-1]["llm"] == "cooldown" and mctx.published[-1]["alerts"]
    assert mctx.published[-1]["workers"] >= 1  # the pool's figures stay in mine's status
    assert ectx.published[-1]["cooldown_kind"] == "llm_busy"
    assert "alerts" not in ectx.published[-1]  # `status` shows the alert once
    await clock.run_until_idle()  # the pause runs out
    await asyncio.wait_for(asyncio.gather(*gates), 1.0)
    assert mctx.published[-1]["llm"] == "probing" and "alerts" not in mctx.published[-1]
    n = len(mctx.published)
    await mine.gate(mctx)
    assert len(mctx.published) == n  # published once per change, not per claim
    runtime.outage.recover(clock.now())
    await mine.gate(mctx)
    assert mctx.published[-1]["llm"] == "ok" and len(mctx.published) == n + 1


async def test_a_pause_left_in_the_status_by_an_earlier_daemon_is_cleared(
        clock: FakeClock, settings: config.Settings, runtime: Runtime) -> None:
    ctx = FakeContext(settings, clock)
    ctx.published.append({"llm": "cooldown", "cooldown_kind": "llm_busy"})
    stage = MineStage(runtime)
    await stage.start(ctx)
    await stage.gate(ctx)
    assert ctx.published[-1]["llm"] == "ok"


def test_failed_windows_retry_while_attempts_remain_then_fail_naming_how_many() -> None:
    invalid = {"status": "failed", "kind": "llm_invalid_json"}
    longer = {"status": "failed", "kind": "llm_context_too_long"}
    first = incomplete([invalid] * 3, 12, 1, 5)
    assert isinstance(first, Retryable) and first.kind == "mining_incomplete"
    assert str(first) == ("3 of 12 windows could not be mined (invalid LLM output after "
                          "repair); the next attempt mines only those")
    last = incomplete([invalid, invalid, longer], 12, 5, 5)
    assert isinstance(last, Permanent) and last.kind == "mining_incomplete"
    assert str(last).startswith("3 of 12 windows could not be mined (2 invalid LLM output "
                                "after repair, 1 prompt longer than mine.num_ctx")
    assert "after 5 attempts" in str(last)
    older = incomplete([{"status": "failed"}], 4, 1, 5)  # parts saved before kinds were
    assert "(invalid LLM output after repair)" in str(older)
