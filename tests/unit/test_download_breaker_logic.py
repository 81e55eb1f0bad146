"""The download circuit breaker, as pure logic."""

from __future__ import annotations

import json

from ytpiped.download.breaker import CLOSED, HELD, OPEN, PROBING, Breaker


def breaker(threshold: int = 5) -> Breaker:
    return Breaker(threshold, cooldown_s=3600, max_cooldown_s=12 * 3600)


def fail_videos(b: Breaker, ids: list[str], now: float = 0.0,
                kind: str = "js_challenge") -> list[str | None]:
    return [b.failed(v, kind, f"error of {v}", now) for v in ids]


def test_opens_after_threshold_failures_of_distinct_videos() -> None:
    b = breaker()
    assert fail_videos(b, ["a", "b", "c", "d"]) == [None] * 4
    assert b.state == CLOSED and not b.blocks(0, busy=False)
    assert b.failed("e", "js_challenge", "n challenge solving failed", 10.0) == "opened"
    assert b.state == OPEN and b.blocks(10.0, busy=False)
    assert b.kind == "js_challenge" and b.error == "n challenge solving failed"
    assert b.probe_at == 10.0 + 3600
    # the four earlier failures spent an attempt each; the one that opened it spends none
    assert b.to_give_back() == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert b.to_give_back() == {}  # given back once


def test_one_video_failing_again_and_again_does_not_open_it() -> None:
    b = breaker()
    assert fail_videos(b, ["a", "a", "a", "b", "b", "c", "d"]) == [None] * 7
    assert b.state == CLOSED
    assert b.failed("e", "forbidden", "403", 0) == "opened"
    assert b.to_give_back() == {"a": 3, "b": 2, "c": 1, "d": 1}


def test_a_success_or_the_videos_own_fault_ends_the_run() -> None:
    b = breaker()
    fail_videos(b, ["a", "b", "c", "d"])
    b.succeeded()
    fail_videos(b, ["e", "f", "g", "h"])
    b.neutral(own_fault=True)  # a private video: not a sign of a broken setup
    fail_videos(b, ["i", "j", "k", "l"])
    assert b.state == CLOSED
    b.neutral(own_fault=False)  # a rate limit: has its own cooldown, changes nothing here
    assert b.failed("m", "format_unavailable", "x", 0) == "opened"


def test_mixed_kinds_name_the_most_common() -> None:
    b = breaker(3)
    b.failed("a", "po_token", "fragment 1 not found", 0)
    b.failed("b", "format_unavailable", "Requested format is not available", 0)
    b.failed("c", "format_unavailable", "Requested format is not available", 0)
    assert b.kind == "format_unavailable" and b.kinds() == ["format_unavailable", "po_token"]


def test_probe_after_the_cooldown_then_doubling_up_to_the_cap() -> None:
    b = breaker(2)
    fail_videos(b, ["a", "b"], now=0)
    assert b.blocks(3599, busy=False)
    assert not b.blocks(3600, busy=False) and b.state == PROBING  # the probe may start
    assert b.blocks(3600, busy=True)  # one probe at a time
    assert b.failed("c", "js_challenge", "again", 3700) == "reopened"
    assert b.probe_at == 3700 + 7200 and b.level == 1
    pauses = []
    for _ in range(6):
        at = b.probe_at
        assert at is not None and not b.blocks(at, busy=False)
        b.failed("x", "js_challenge", "again", at)
        assert b.probe_at is not None
        pauses.append(b.probe_at - at)
    assert pauses == [4 * 3600, 8 * 3600, 12 * 3600, 12 * 3600, 12 * 3600, 12 * 3600]
    assert b.opened_at == 0  # still the time it first opened
    assert not b.blocks(b.probe_at, busy=False)
    assert b.succeeded() and b.state == CLOSED and b.level == 0 and b.failures == {}


def test_a_probe_that_meets_the_videos_own_fault_leaves_the_next_one_to_probe() -> None:
    b = breaker(2)
    fail_videos(b, ["a", "b"])
    assert not b.blocks(3600, busy=False)
    b.neutral(own_fault=True)
    assert b.state == PROBING and not b.blocks(3601, busy=False)


def test_a_download_in_flight_failing_while_open_is_held_without_spending() -> None:
    b = breaker(2)
    fail_videos(b, ["a", "b"])
    assert b.failed("c", "js_challenge", "x", 5) == "open"
    assert b.failures["c"].spent == 0 and b.probe_at == 3600


def test_threshold_zero_never_opens() -> None:
    b = breaker(0)
    assert fail_videos(b, [str(i) for i in range(50)]) == [None] * 50
    assert not b.blocks(0, busy=False)


def test_operator_pause_and_resume_apply_once_each() -> None:
    b = breaker(2)
    fail_videos(b, ["a", "b"])
    assert b.request("resume", at=100.0) == "resumed"
    assert b.state == CLOSED and not b.blocks(100, busy=False)
    assert b.request("resume", at=100.0) is None  # the same request is not applied twice
    assert b.request("pause", at=200.0) == "held"
    assert b.blocks(10**9, busy=False) and b.to_json()["state"] == HELD
    assert b.request("resume", at=300.0) == "resumed" and not b.blocks(300, busy=False)


def test_state_survives_a_restart_through_json() -> None:
    b = breaker(3)
    fail_videos(b, ["a", "b", "c"], now=50)
    b.request("pause", at=60.0)
    data = json.loads(json.dumps(b.to_json()))
    again = breaker(3)
    again.restore(data)
    assert again.state == OPEN and again.held and again.probe_at == 50 + 3600
    assert again.kind == "js_challenge" and list(again.failures) == ["a", "b", "c"]
    assert again.request("pause", at=60.0) is None  # already applied before the restart
    again.restore(None)  # a first start: nothing to take over
    assert again.state == OPEN
