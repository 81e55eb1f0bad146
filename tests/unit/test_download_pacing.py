from __future__ import annotations

import random

from ytpiped import config
from ytpiped.download.pacing import HOUR, Buffer, Pacer

CFG = config.load().download  # targets 20, low 5, high 40; delays 30-60/180-300/60-120
GB = 10**9


def buf(waiting: int, queued: int = 100, size: int = 0, free: int = 100 * GB) -> Buffer:
    return Buffer(queued=queued, waiting=waiting, bytes=size, free_disk=free)


def test_phase_transitions() -> None:
    p = Pacer(CFG, random.Random(1))
    assert p.phase(0, buf(0)) == "buffer_build"
    assert p.phase(0, buf(19)) == "buffer_build"
    assert p.phase(0, buf(20)) == "steady"  # target reached
    assert p.phase(0, buf(10)) == "buffer_build"  # phase() records nothing: still building
    assert p.next_at(0, buf(20))[0] == "steady"  # next_at records that the buffer was built
    assert p.phase(0, buf(10)) == "steady"  # so it stays steady above low water
    assert p.phase(0, buf(4)) == "catch_up"  # below low water: catch up, not rebuild
    assert p.phase(0, buf(40)) == "full"  # high water
    assert p.phase(0, buf(5, size=21 * GB)) == "full"  # over max_buffer_bytes
    assert p.phase(0, buf(5, free=GB)) == "full"  # disk low
    assert p.phase(0, buf(5, queued=0)) == "idle"
    p.enter_cooldown(100, "rate_limited")
    assert p.phase(101, buf(5)) == "cooldown"
    assert p.phase(100 + CFG.rate_limit_cooldown_s, buf(5)) == "steady"


def test_delays_are_randomized_in_the_phase_range_from_the_end_of_the_last_download() -> None:
    rng = random.Random(3)
    p = Pacer(CFG, rng)
    seen = []
    for i in range(50):
        end = 1000.0 * i
        p.finished(end, ok=True)
        phase, at = p.next_at(end, buf(0))
        assert phase == "buffer_build" and at is not None
        seen.append(at - end)
    assert all(30 <= d <= 60 for d in seen) and max(seen) - min(seen) > 15
    p.built = True
    p.finished(0.0, ok=True)
    _, at = p.next_at(0.0, buf(25))
    assert at is not None and 180 <= at <= 300
    _, at = p.next_at(0.0, buf(2))
    assert at is not None and 60 <= at <= 120
    assert p.next_at(0.0, buf(45)) == ("full", None)


def test_hourly_budget_holds_whatever_the_phase() -> None:
    cfg = config.load(flags={"download.max_videos_per_hour": 3,
                             "download.delay_buffer_build_s": [0, 0]}).download
    p = Pacer(cfg)
    for t in (0.0, 10.0, 20.0):
        assert p.next_at(t, buf(0))[1] == t
        p.started(t)
        p.finished(t, ok=True)
    _, at = p.next_at(30.0, buf(0))
    assert at == HOUR  # the first of the three leaves the window at t=3600
    assert p.rate_per_hour(30.0) == 3.0
    assert p.next_at(HOUR + 1, buf(0))[1] == HOUR + 1


def test_cooldown_doubles_to_the_cap_and_resets_after_success() -> None:
    cfg = config.load(flags={"download.rate_limit_cooldown_s": 100,
                             "download.max_cooldown_s": 350}).download
    p = Pacer(cfg)
    assert p.enter_cooldown(0, "rate_limited") == 100
    assert p.enter_cooldown(100, "rate_limited") == 300
    assert p.enter_cooldown(300, "bot_check") == 650  # 400 capped at 350
    assert p.next_at(301, buf(5))[0] == "cooldown"
    assert p.next_at(301, buf(5))[1] == 650
    p.finished(700, ok=True)
    assert p.cooldown_level == 0 and p.enter_cooldown(800, "rate_limited") == 900
