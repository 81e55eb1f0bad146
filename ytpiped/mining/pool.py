"""The adaptive worker pool: how many LLM requests are in flight at once.

Start (`workers = "auto"`): the old formula min((RAM - reserved) / model RAM, cores x 1.5,
max_workers), bounded by what the servers can serve. One Ollama server holds one copy of
the weights and serves OLLAMA_NUM_PARALLEL slots, each with its own KV cache; /api/ps
reports the loaded size (weights + slots x KV) and /api/show the model geometry, so the
number of slots is (size - weights) / KV-per-slot. An OpenAI-compatible server has no
/api/ps: llama.cpp's server reports its slots (/props); others (vLLM, SGLang, LM Studio,
llama-cpp-python) cannot say, and count as one until the hill-climb finds more. Unknown
(model not loaded): one per host.

Then the limit adapts, interval by interval (pure `climb`). Ramp: step up while throughput
rises by `gain` (two steps while it still scales almost linearly). A step that did not pay,
a 503 or timeout (multiplicative cut), or latency grown past `latency_tol` over the best seen
without a throughput gain ends the ramp: the pool settles. Settled, it holds for `hold`
intervals, then probes one step, down and up in turn: one lower is kept when it serves within
`keep` of the best above it (as much work, fewer requests waiting), one higher only when it
gains `gain`. A limit that met 503s or timeouts is not probed again for `forget` intervals
(each 503 is a request thrown away).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ytpiped.clock import Clock


def formula_workers(ram_bytes: int, cores: int, model_ram_gb: float, reserved_ram_gb: float,
                    max_workers: int) -> int:
    """min((RAM - reserved) / model RAM, cores x 1.5, max_workers), at least 1."""
    free_gb = ram_bytes / 1e9 - reserved_ram_gb
    ram_limited = int(free_gb / model_ram_gb) if model_ram_gb > 0 else max_workers
    return max(1, min(ram_limited, int(cores * 1.5), max_workers))


def kv_bytes_per_slot(model_info: Mapping[str, Any], num_ctx: int) -> int | None:
    """f16 K+V cache of one slot of `num_ctx` tokens, from /api/show model_info."""
    arch = model_info.get("general.architecture")
    try:
        layers = int(model_info[f"{arch}.block_count"])
        heads = int(model_info[f"{arch}.attention.head_count"])
        kv_heads = int(model_info.get(f"{arch}.attention.head_count_kv") or heads)
        head_dim = int(model_info[f"{arch}.embedding_length"]) // heads
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return 2 * layers * num_ctx * kv_heads * head_dim * 2


def server_slots(info: Mapping[str, Any]) -> int | None:
    """Parallel slots of one server (see module doc), or None when it cannot be told."""
    if info.get("slots"):
        return max(1, int(info["slots"]))
    size, weights, ctx = info.get("size"), info.get("weights"), info.get("context_length")
    if not size or not weights or not ctx:
        return None
    kv = kv_bytes_per_slot(info.get("model_info") or {}, int(ctx))
    if not kv:
        return None
    return max(1, round((int(size) - int(weights)) / kv))


def initial_workers(formula: int, infos: Sequence[Mapping[str, Any]], hosts: int,
                    max_workers: int) -> tuple[int, int]:
    """(start, upper) of the pool: start = min(formula, slots the servers serve); upper
    leaves room to probe one queued request per slot, never above max_workers."""
    slots = [server_slots(i) for i in infos]
    known = sum(s for s in slots if s is not None)
    unknown = hosts - sum(1 for s in slots if s is not None)
    served = known + unknown  # a host that cannot say serves at least one (Ollama default)
    start = max(1, min(formula, served, max_workers))
    upper = max(start, min(max_workers, 2 * served + 2 if unknown == 0 else max_workers))
    return start, upper


@dataclass(frozen=True)
class Interval:
    """One measuring interval at a fixed limit."""

    limit: int
    completed: int
    elapsed_s: float
    overloads: int
    p50_latency_s: float

    @property
    def throughput(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class HillClimb:
    limit: int
    upper: int
    lower: int = 1
    tput: Mapping[int, float] = field(default_factory=dict)  # limit -> smoothed throughput
    best_latency: float | None = None
    ceiling: int | None = None  # settled here (set by a failed probe or a 503): hold, probe
    hold: int = 0
    last_step: int = 0
    probed_from: int | None = None  # a probe one below this limit is being measured
    probe_down: bool = True  # the direction of the next probe once settled
    overload_at: int | None = None  # lowest limit that saw 503/timeouts; not probed again
    overload_age: int = 0  # intervals since; the mark is forgotten after `forget` of them


def climb(s: HillClimb, sample: Interval, *, gain: float = 0.05, keep: float = 0.02,
           latency_tol: float = 0.5, backoff: float = 0.7, hold: int = 6,
           forget: int = 200) -> HillClimb:
    """The next limit after one interval (pure)."""
    lim = s.limit
    tput = dict(s.tput)
    old = tput.get(sample.limit)
    tput[sample.limit] = sample.throughput if old is None else (old + sample.throughput) / 2
    best_lat = sample.p50_latency_s if s.best_latency is None else min(s.best_latency,
                                                                         sample.p50_latency_s)
    over_at, age = s.overload_at, s.overload_age + 1
    if over_at is not None and age > forget:
        over_at, age = None, 0
    s = replace(s, tput=tput, best_latency=best_lat, overload_at=over_at, overload_age=age)

    def to(limit: int, step: int, **kw: Any) -> HillClimb:
        return replace(s, limit=max(s.lower, min(s.upper, limit)), last_step=step, **kw)

    def settle(limit: int) -> HillClimb:
        return to(limit, min(0, limit - lim), ceiling=limit, hold=hold, probed_from=None)

    if sample.overloads > 0:
        lim = min(lim, sample.limit)
        new = min(lim - 1, math.floor(lim * backoff))
        mark = lim if s.overload_at is None else min(lim, s.overload_at)
        return replace(settle(new), last_step=-1, overload_at=mark, overload_age=0)
    if sample.limit != lim:
        return s  # measured at another limit (set from outside meanwhile): just remember it
    if s.probed_from is not None:
        # one below serves as much as anything above it (within `keep`)? fewer in flight,
        # lower latency: stay. Otherwise back up.
        above = max((t for limit, t in tput.items() if limit > lim), default=0.0)
        return settle(lim if tput[lim] >= above * (1 - keep) else s.probed_from)
    prev = lim - max(1, s.last_step)
    below = tput.get(prev)
    no_gain = below is not None and tput[lim] < below * (1 + gain)
    if s.last_step > 0 and no_gain:
        return settle(lim - 1)  # the step up did not pay
    if sample.p50_latency_s > best_lat * (1 + latency_tol) and no_gain and lim > s.lower:
        return settle(lim - 1)
    up_blocked = s.overload_at is not None and lim + 1 >= s.overload_at
    if s.ceiling is not None or up_blocked:
        if s.ceiling is None:
            return to(lim, 0, ceiling=lim, hold=hold)  # the ramp ran into a 503 mark
        if s.hold > 0:
            return to(lim, 0, hold=s.hold - 1)
        down = (s.probe_down or up_blocked) and lim > s.lower
        if down:
            return to(lim - 1, -1, probed_from=lim, probe_down=False)
        if up_blocked:
            return to(lim, 0, hold=hold)
        return to(lim + 1, +1, ceiling=None, probe_down=True)
    # still scaling almost linearly (each worker adds >= 70 % of its share): take two steps
    linear = below is not None and prev < lim and \
        tput[lim] >= below * (1 + 0.7 * (lim - prev) / prev)
    step = 2 if linear and (s.overload_at is None or lim + 2 < s.overload_at) else 1
    return to(lim + step, step)


class AdaptivePool:
    """A semaphore whose size follows `climb` (or stays fixed), fed by `record`."""

    def __init__(self, start: int, upper: int, clock: Clock, *, adaptive: bool = True,
                 min_interval: int = 10) -> None:
        self.clock = clock
        self.adaptive = adaptive
        self.min_interval = min_interval
        self.state = HillClimb(limit=max(1, min(start, upper)), upper=max(1, upper))
        self.in_flight = 0
        self.completed = 0
        self.overloads = 0
        self.history: list[int] = [self.state.limit]
        self._waiters: list[asyncio.Future[None]] = []
        self._skip = 0  # completions of requests started under the previous limit
        self._reset_interval()

    @property
    def limit(self) -> int:
        return self.state.limit

    def set_limits(self, start: int, upper: int) -> None:
        """Replace the limit and its bound (auto sizing); starts a new interval."""
        self.state = HillClimb(limit=max(1, min(start, upper)), upper=max(1, upper))
        self.history.append(self.state.limit)
        self._reset_interval()
        self._wake()

    def _reset_interval(self) -> None:
        self._t0 = self.clock.monotonic()
        self._lat: list[float] = []
        self._over = 0
        self._limit_at_start = self.state.limit

    def rate_per_min(self) -> float:
        elapsed = self.clock.monotonic() - self._t0
        return 60.0 * len(self._lat) / elapsed if elapsed > 0 else 0.0

    async def acquire(self) -> None:
        if self.in_flight < self.state.limit and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.state.limit:
            fut = self._waiters.pop(0)
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def record(self, latency_s: float, *, overload: bool = False) -> None:
        """One request finished (or was refused/timed out: overload)."""
        if overload:
            self.overloads += 1
            self._over += 1
        else:
            self.completed += 1
        if self._skip > 0 and not (overload and self.state.last_step > 0):
            # still the transient after a change: not measured. A 503 of a request sent
            # before a cut is the cut's cause, not news; after a step up it is news.
            self._skip -= 1
            self._reset_interval()
            return
        if not overload:
            self._lat.append(latency_s)
        if not self.adaptive:
            return
        if self._over == 0 and len(self._lat) < max(self.min_interval, 4 * self.state.limit):
            return
        lat = sorted(self._lat) or [latency_s]
        sample = Interval(self._limit_at_start, len(self._lat),
                        self.clock.monotonic() - self._t0, self._over, lat[len(lat) // 2])
        self.state = climb(self.state, sample)
        if self.state.limit != self.history[-1]:
            self.history.append(self.state.limit)
            self._skip = self.in_flight
        self._reset_interval()
        self._wake()
