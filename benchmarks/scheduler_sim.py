"""The transcription policies, simulated by driving the real `Dispatcher` on virtual time.

Nothing of the dispatch loop is re-implemented here: `ytpiped.engines.dispatcher.Dispatcher`
(policy, learned speeds starting from the tracker's priors, the backlog endgame rule, the
adaptive GPU slot climb) runs unchanged on a `FakeClock`, with fake engines that take
`audio / speed` seconds of virtual time per chunk. Videos are fed the way the transcribe
stage feeds them: `slots + 1` videos in flight, each cut into chunks of at most
`--max-chunk` seconds, all of a video's chunks submitted at once, and the dispatcher told
how much audio waits behind them (`upcoming_s`).

Profiles: GPUs with a VRAM ceiling of slots (worker processes), each `speed`x real time
alone, and CPU slots. GPU contention model (`--contention`, both by default): k processes
on one GPU share its compute; the GPU's aggregate speed is speed·k up to 2 processes and
speed·2·(k/2)^0.3 beyond (+13 % for the 3rd, +9 % for the 4th, +4.7 % for the 7th), so
each of k processes runs at aggregate(k)/k, re-evaluated whenever a process starts or ends
(processor sharing). Without it every slot runs at `speed` however many run.

Workloads: log-normal podcasts (median 45 min), short clips (20–300 s), and a mix.
Actual times carry log-normal noise (`--noise`) around `audio / speed`. The lower bound is
max(total audio / the best aggregate speed of all devices, the longest chunk / the fastest
single process); the ratio is makespan / bound.

    python -m benchmarks.scheduler_sim [--videos 120] [--contention both|on|off]
                                       [--climb-interval 30] [--jobs 2]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import os
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ytpiped.engines.base import ChunkJob, ChunkResult
from ytpiped.engines.dispatcher import Dispatcher
from ytpiped.scheduling.policy import POLICIES
from ytpiped.testing.clock import FakeClock

CONTENTION_EXPONENT = 0.3  # aggregate speed ∝ k^0.3 beyond 2 processes on one GPU
LINEAR_UP_TO = 2  # processes a GPU runs side by side at full speed each


@dataclass(frozen=True)
class Device:
    kind: str  # "gpu" | "cpu"
    speed: float  # x real time of one process alone
    slots: int  # GPU: the VRAM ceiling of worker processes; CPU: slots
    model: str = "large-v3-turbo"


PROFILES: dict[str, list[Device]] = {
    "1gpu+3cpu": [Device("gpu", 50.0, 8), Device("cpu", 4.0, 3)],
    "2gpu+3cpu": [Device("gpu", 50.0, 8), Device("gpu", 50.0, 8), Device("cpu", 4.0, 3)],
    "cpu_only": [Device("cpu", 4.0, 3)],
    "slow_gpu+3cpu": [Device("gpu", 12.0, 4), Device("cpu", 4.0, 3)],
    # the defaults: a different model on each kind, so whole videos are placed
    "1gpu+3cpu_2models": [Device("gpu", 50.0, 8), Device("cpu", 4.0, 3, "small")],
}


def aggregate(speed: float, k: int, contention: bool) -> float:
    """The audio seconds per second k processes on one GPU deliver together."""
    if not contention or k <= LINEAR_UP_TO:
        return speed * k
    return float(speed * LINEAR_UP_TO * (k / LINEAR_UP_TO) ** CONTENTION_EXPONENT)


class SimClock(FakeClock):
    """A FakeClock that can wake a given future at a deadline, registered at once (an
    `ensure_future(clock.sleep(...))` registers only when its task first runs, and by then
    `drive` may have jumped time, which delayed GPU chunks by up to the next deadline)."""

    def wake(self, seconds: float, fut: asyncio.Future[None]) -> None:
        heapq.heappush(self._sleepers, (self.monotonic() + max(0.0, seconds),
                                        next(self._seq), fut))


@dataclass
class SharedGPU:
    """One GPU's compute, shared by the processes running on it (processor sharing)."""

    clock: SimClock
    speed: float
    contention: bool
    running: int = 0
    wakers: set[asyncio.Future[None]] = field(default_factory=set)

    def per_process(self) -> float:
        k = max(1, self.running)
        return aggregate(self.speed, k, self.contention) / k

    def _changed(self) -> None:
        for fut in self.wakers:  # every process re-evaluates its share, now
            if not fut.done():
                fut.set_result(None)

    async def work(self, audio_s: float) -> None:
        """Process `audio_s` seconds of audio at whatever share of the GPU this gets. One
        future per wait, woken by the clock or by a change in the number of processes, so
        each process resumes in the same loop iteration as a plain `clock.sleep`."""
        self.running += 1
        self._changed()
        left = audio_s
        loop = asyncio.get_running_loop()
        try:
            while left > 1e-9:
                rate, began = self.per_process(), self.clock.monotonic()
                fut: asyncio.Future[None] = loop.create_future()
                self.wakers.add(fut)
                self.clock.wake(left / rate, fut)
                try:
                    await fut
                finally:
                    self.wakers.discard(fut)
                left -= (self.clock.monotonic() - began) * rate
        finally:
            self.running -= 1
            self._changed()


class SimEngine:
    """A slot: `audio × noise / speed` of virtual time per chunk, on a shared GPU or alone."""

    def __init__(self, clock: SimClock, device: Device, name: str, noise: dict[str, float],
                 done: Counter[str], gpu: SharedGPU | None = None) -> None:
        self.clock, self.device, self.gpu, self.noise, self.done = clock, device, gpu, noise, done
        self.device_kind, self.device_name, self.model = device.kind, name, device.model

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        began = self.clock.monotonic()
        work = job.audio_s * self.noise[f"{job.video_id}.{job.idx}"]
        if self.gpu is not None:
            await self.gpu.work(work)
        else:
            await self.clock.sleep(work / self.device.speed)
        self.done[f"{job.video_id}.{job.idx}"] += 1
        return ChunkResult([{"start": job.start_s, "end": job.end_s, "text": "x"}], "en",
                           self.clock.monotonic() - began, self.device_name, self.model)


def workloads(videos: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    long = [rng.lognormvariate(math.log(2700), 0.6) for _ in range(videos)]
    clips = [rng.uniform(20, 300) for _ in range(videos)]
    mixed = [long[i] if i % 2 else clips[i] for i in range(videos)]
    return {"podcasts": long, "short_clips": clips, "mixed": mixed}


def chunk_bounds(duration: float, max_chunk: float) -> list[tuple[float, float]]:
    n = max(1, math.ceil(duration / max_chunk))
    return [(duration * i / n, duration * (i + 1) / n) for i in range(n)]


def noise_factors(durations: list[float], noise: float, seed: int,
                  max_chunk: float) -> dict[str, float]:
    """Chunk id -> actual / predicted processing time (log-normal around 1)."""
    rng = random.Random(seed)
    return {f"v{v}.{i}": rng.lognormvariate(0.0, noise)
            for v, d in enumerate(durations) for i in range(len(chunk_bounds(d, max_chunk)))}


def lower_bound(durations: list[float], devices: list[Device], max_chunk: float,
                contention: bool, factor: dict[str, float]) -> float:
    """max(all the work / the best aggregate speed of every device together, the longest
    piece of work / the fastest single process): no schedule can finish sooner."""
    speed = sum(max(aggregate(d.speed, k, contention) for k in range(1, d.slots + 1))
                if d.kind == "gpu" else d.speed * d.slots for d in devices)
    work = [(b - a) * factor[f"v{v}.{i}"] for v, d in enumerate(durations)
            for i, (a, b) in enumerate(chunk_bounds(d, max_chunk))]
    return max(sum(work) / speed, max(work) / max(d.speed for d in devices))


@dataclass
class Outcome:
    makespan_s: float
    done: Counter[str]  # chunk id -> times transcribed
    chunks: int
    gpu_active: dict[str, int]  # GPU -> active slots at the end (the climb's choice)


async def simulate(durations: list[float], devices: list[Device], policy: str, *,
                   contention: bool = True, noise: float = 0.1, seed: int = 1,
                   max_chunk: float = 900.0, climb_interval_s: float = 30.0,
                   adaptive: bool = True) -> Outcome:
    """Feed `durations` (seconds of audio per video, in queue order) through a real
    Dispatcher over `devices`; virtual time, so it takes no real waiting."""
    clock = SimClock()
    plans = [chunk_bounds(d, max_chunk) for d in durations]
    factor = noise_factors(durations, noise, seed, max_chunk)
    done: Counter[str] = Counter()
    engines: list[SimEngine] = []
    g = 0
    for dev in devices:
        if dev.kind == "gpu":
            gpu = SharedGPU(clock, dev.speed, contention)
            engines += [SimEngine(clock, dev, f"cuda:{g}", factor, done, gpu)
                        for _ in range(dev.slots)]
            g += 1
        else:
            engines += [SimEngine(clock, dev, "cpu", factor, done) for _ in range(dev.slots)]
    d = Dispatcher(list(engines), policy=policy, clock=clock,
                   climb_interval_s=climb_interval_s, gpu_adaptive=adaptive)
    queue = list(range(len(durations)))
    waiting_audio = [sum(durations)]

    async def video(v: int) -> None:
        plan = plans[v]
        d.begin_video(f"v{v}", sum(b - a for a, b in plan))
        try:
            await asyncio.gather(*(d.run(ChunkJob(f"v{v}", i, "sim", a, b, "en"))
                                   for i, (a, b) in enumerate(plan)))
        finally:
            d.end_video(f"v{v}")

    async def feeder() -> None:  # one of the stage's `slots + 1` concurrent runs
        while queue:
            v = queue.pop(0)
            waiting_audio[0] -= durations[v]
            d.upcoming_s = waiting_audio[0]
            await video(v)

    feeders: asyncio.Future[Any] = asyncio.gather(*(feeder() for _ in range(len(engines) + 1)))
    await clock.drive(feeders, max_steps=50_000_000)
    await feeders
    return Outcome(clock.monotonic(), done, len(factor),
                   {dev: c.active for dev, c in d.climbs.items()})


@dataclass(frozen=True)
class Case:
    workload: str
    profile: str
    contention: bool
    policy: str
    adaptive: bool
    videos: int
    seed: int
    noise: float
    max_chunk: float
    climb_interval_s: float


def cases(videos: int, seed: int, noise: float, max_chunk: float, climb_interval_s: float,
          profiles: list[str], models: tuple[bool, ...], slots: tuple[bool, ...]
          ) -> list[Case]:
    out = []
    for adaptive in slots:
        for workload in ("podcasts", "short_clips", "mixed"):
            for profile in profiles:
                has_gpu = any(d.kind == "gpu" for d in PROFILES[profile])
                if not has_gpu and not adaptive:
                    continue  # no GPU: no climb, the adaptive run says it all
                for contention in models if has_gpu else (False,):  # no GPU: none shared
                    out += [Case(workload, profile, contention, policy, adaptive, videos, seed,
                                 noise, max_chunk, climb_interval_s)
                            for policy in POLICIES if has_gpu or policy != "gpu_only"]
    return out


def run_case(c: Case) -> dict[str, Any]:
    durations = workloads(c.videos, c.seed)[c.workload]
    devices = PROFILES[c.profile]
    o = asyncio.run(simulate(durations, devices, c.policy, contention=c.contention,
                             noise=c.noise, seed=c.seed, max_chunk=c.max_chunk,
                             climb_interval_s=c.climb_interval_s, adaptive=c.adaptive))
    if len(o.done) != o.chunks or any(n != 1 for n in o.done.values()):
        raise RuntimeError(f"{c.workload}/{c.profile}/{c.policy}: a chunk was not "
                           "transcribed exactly once")
    lb = lower_bound(durations, devices, c.max_chunk, c.contention,
                     noise_factors(durations, c.noise, c.seed, c.max_chunk))
    return {"workload": c.workload, "profile": c.profile, "contention": c.contention,
            "gpu_slots": "adaptive" if c.adaptive else "fixed", "policy": c.policy,
            "makespan_s": round(o.makespan_s, 1),
            "lower_bound_s": round(lb, 1), "ratio": round(o.makespan_s / lb, 4),
            "gpu_active": o.gpu_active}


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per policy and contention model: the range of ratios over workloads and profiles."""
    out: dict[str, Any] = {}
    for r in results:
        key = (f"{r['policy']}/{r['gpu_slots']}/"
               f"{'contention' if r['contention'] else 'no_contention'}")
        lo, hi = out.get(key, (math.inf, 0.0))
        out[key] = (min(lo, r["ratio"]), max(hi, r["ratio"]))
    return {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in sorted(out.items())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=120)
    ap.add_argument("--max-chunk", type=float, default=900.0)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--contention", choices=("both", "on", "off"), default="both")
    ap.add_argument("--slots", choices=("both", "adaptive", "fixed"), default="both",
                    help="GPU slots: adaptive (the daemon's climb from 2), fixed (every slot "
                         "of the ceiling, as with transcribe.gpu_slots_adaptive = false)")
    ap.add_argument("--climb-interval", type=float, default=30.0,
                    help="least seconds at one GPU slot count before a climb step "
                         "(the daemon's: 30)")
    ap.add_argument("--profile", action="append", choices=sorted(PROFILES),
                    help="only these profiles (repeatable; default all)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="simulations run side by side (processes)")
    args = ap.parse_args()
    models = {"both": (False, True), "on": (True,), "off": (False,)}[args.contention]
    slots = {"both": (True, False), "adaptive": (True,), "fixed": (False,)}[args.slots]
    todo = cases(args.videos, args.seed, args.noise, args.max_chunk, args.climb_interval,
                 args.profile or list(PROFILES), models, slots)
    began = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_case, todo))
    else:
        results = [run_case(c) for c in todo]
    print(f"{'slots':<9}{'workload':<12}{'profile':<19}{'contention':<11}{'policy':<12}"
          f"{'makespan h':>11}{'bound h':>9}{'ratio':>8}  active GPU slots at the end")
    for r in results:
        print(f"{r['gpu_slots']:<9}{r['workload']:<12}{r['profile']:<19}"
              f"{'on' if r['contention'] else 'off':<11}"
              f"{r['policy']:<12}{r['makespan_s'] / 3600:>11.2f}{r['lower_bound_s'] / 3600:>9.2f}"
              f"{r['ratio']:>8.3f}  {r['gpu_active'] or ''}")
    print(json.dumps({"videos": args.videos, "max_chunk_s": args.max_chunk, "noise": args.noise,
                      "climb_interval_s": args.climb_interval,
                      "seconds": round(time.perf_counter() - began, 1),
                      "ratio_ranges": summary(results), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
