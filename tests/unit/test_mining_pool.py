from __future__ import annotations

import asyncio

from ytpiped.mining.pool import (
    AdaptivePool,
    HillClimb,
    Interval,
    climb,
    formula_workers,
    initial_workers,
    kv_bytes_per_slot,
    server_slots,
)
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.fake_ollama import MODEL_INFO, WEIGHTS_BYTES

GB = 10**9


def test_formula_is_min_of_ram_cores_and_max() -> None:
    assert formula_workers(64 * GB, 16, 6.0, 4.0, 16) == 10  # RAM: 60/6
    assert formula_workers(256 * GB, 4, 6.0, 4.0, 16) == 6  # cores x 1.5
    assert formula_workers(256 * GB, 64, 6.0, 4.0, 8) == 8  # max
    assert formula_workers(4 * GB, 8, 6.0, 4.0, 16) == 1  # never below one


def info(parallel: int, num_ctx: int = 8192) -> dict[str, object]:
    kv = kv_bytes_per_slot(MODEL_INFO, num_ctx)
    assert kv is not None
    return {"size": WEIGHTS_BYTES + parallel * kv, "weights": WEIGHTS_BYTES,
            "context_length": num_ctx, "model_info": MODEL_INFO}


def test_server_slots_from_ps_size_and_show_geometry() -> None:
    for p in (1, 3, 8):
        assert server_slots(info(p)) == p
    assert server_slots({"size": None, "weights": WEIGHTS_BYTES}) is None
    assert server_slots({**info(2), "model_info": {}}) is None


def test_initial_workers_bounded_by_servers() -> None:
    assert initial_workers(10, [info(4)], 1, 16) == (4, 10)
    assert initial_workers(3, [info(4), info(4)], 2, 16) == (3, 16)
    # a host that cannot say counts as one slot and leaves the upper bound open
    assert initial_workers(10, [{"size": None}], 1, 12) == (1, 12)


def sample(limit: int, tput: float, *, over: int = 0, lat: float = 1.0) -> Interval:
    return Interval(limit, int(tput * 10), 10.0, over, lat)


def test_overload_cuts_multiplicatively_and_sets_ceiling() -> None:
    s = climb(HillClimb(limit=10, upper=16), sample(10, 5.0, over=1))
    assert s.limit == 7 and s.ceiling == 7 and s.last_step == -1
    s1 = climb(HillClimb(limit=1, upper=16), sample(1, 1.0, over=3))
    assert s1.limit == 1


def test_increase_is_kept_while_throughput_rises() -> None:
    s = HillClimb(limit=1, upper=16)
    seen = []
    for _ in range(4):
        seen.append(s.limit)
        s = climb(s, sample(s.limit, 2.0 * s.limit))
    # +1 first; then, while each worker adds (almost) its full share, two steps at a time
    assert seen == [1, 2, 4, 6] and s.limit == 8


def test_sublinear_gain_steps_one_at_a_time() -> None:
    s = HillClimb(limit=1, upper=16)
    s = climb(s, sample(1, 2.0))
    s = climb(s, sample(2, 2.5))  # +25 %: worth keeping, but far from linear
    assert s.limit == 3 and s.last_step == 1


def run(s: HillClimb, curve: dict[int, float], intervals: int) -> tuple[HillClimb, list[int]]:
    """`intervals` decisions, each measuring the throughput `curve` gives the limit."""
    limits = []
    for _ in range(intervals):
        s = climb(s, sample(s.limit, curve[s.limit]))
        limits.append(s.limit)
    return s, limits


def test_increase_without_gain_is_undone_then_probed_both_ways() -> None:
    s = HillClimb(limit=4, upper=8)
    s = climb(s, sample(4, 4.0))
    assert s.limit == 5
    s = climb(s, sample(5, 4.05))  # < 5 % gain
    assert s.limit == 4 and s.ceiling == 4
    curve = {3: 3.0, 4: 4.0, 5: 4.05}
    s, limits = run(s, curve, 16)
    assert limits[:6] == [4] * 6  # hold
    assert limits[6:8] == [3, 4]  # probe down: one lower serves less, back up
    assert limits[14:16] == [5, 4]  # later probe up: no gain, back down
    assert s.limit == 4


def test_plateau_settles_on_the_fewest_workers_that_serve_it() -> None:
    # 4 slots: beyond 4 in flight requests only queue (and cost a little)
    curve = {n: min(n, 4) * (1 - 0.01 * max(0, n - 4)) for n in range(1, 9)}
    s = HillClimb(limit=7, upper=8, ceiling=7, tput={7: curve[7]})
    s, limits = run(s, curve, 60)
    assert min(limits) == 3  # probed once below the knee ...
    assert limits[-10:].count(4) >= 8 and s.limit == 4  # ... and settled on it


def test_rising_latency_without_gain_steps_down() -> None:
    s = HillClimb(limit=3, upper=8, tput={2: 3.0}, best_latency=1.0)
    s = climb(s, sample(3, 3.0, lat=2.0))
    assert s.limit == 2


def test_never_above_upper() -> None:
    s = HillClimb(limit=3, upper=3)
    s = climb(s, sample(3, 9.0))
    assert s.limit == 3


async def test_pool_limits_in_flight_and_follows_limit_changes() -> None:
    pool = AdaptivePool(2, 4, FakeClock(), adaptive=False)
    await pool.acquire()
    await pool.acquire()
    third = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    assert not third.done() and pool.in_flight == 2
    pool.state = HillClimb(limit=3, upper=4)
    pool._wake()
    await asyncio.sleep(0)
    assert third.done() and pool.in_flight == 3
    pool.release()
    pool.release()
    pool.release()
    assert pool.in_flight == 0


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    pool = AdaptivePool(1, 1, FakeClock(), adaptive=False)
    await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    pool.release()
    assert pool.in_flight == 0
    await asyncio.wait_for(pool.acquire(), 1)


def test_pool_records_intervals_and_adapts() -> None:
    clock = FakeClock()
    pool = AdaptivePool(1, 8, clock, min_interval=4)
    for _ in range(4):
        clock.advance(1.0)
        pool.record(1.0)
    assert pool.limit == 2  # first interval: probe up
    pool.record(30.0, overload=True)
    assert pool.limit == 1 and pool.overloads == 1
    assert pool.history == [1, 2, 1]


def test_503s_of_requests_sent_before_a_cut_do_not_cut_again() -> None:
    clock = FakeClock()
    pool = AdaptivePool(4, 8, clock, min_interval=4)
    pool.state = HillClimb(limit=4, upper=8, last_step=1)
    pool.in_flight = 4
    pool.record(1.0, overload=True)  # the step up to 4 overloaded the server: cut
    assert pool.limit == 2
    pool.record(1.0, overload=True)  # sent at 4 before the cut: already answered
    pool.record(1.0, overload=True)
    assert pool.limit == 2 and pool.overloads == 3
    pool.in_flight = 2
    for _ in range(8):  # at 2 now; a fresh 503 still cuts
        pool.record(1.0)
    pool.record(1.0, overload=True)
    assert pool.limit == 1


def test_limit_that_met_503s_is_not_probed_again_until_forgotten() -> None:
    s = HillClimb(limit=4, upper=16)
    s = climb(s, sample(4, 4.0, over=2))
    assert s.limit == 2 and s.overload_at == 4
    seen = set()
    for _ in range(30):
        s = climb(s, sample(s.limit, s.limit * 1.0), forget=50)
        seen.add(s.limit)
    assert max(seen) == 3  # climbs to just below the overloaded limit, never to it
    for _ in range(60):
        s = climb(s, sample(s.limit, s.limit * 1.0), forget=50)
        seen.add(s.limit)
    assert max(seen) >= 4 and s.overload_at is None  # forgotten: probes again
