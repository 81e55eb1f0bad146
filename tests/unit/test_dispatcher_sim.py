"""The real Dispatcher driven on virtual time with fake slots: the endgame rule over a
daemon-length run, one model per video, and the GPU slot climb."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter

from ytpiped.engines.base import ChunkJob, ChunkResult
from ytpiped.engines.dispatcher import Dispatcher
from ytpiped.scheduling import gpu_slots
from ytpiped.scheduling.backlog import Backlog
from ytpiped.scheduling.policy import Rules
from ytpiped.scheduling.tracker import PerformanceTracker, PerfSample
from ytpiped.testing.clock import FakeClock


class TimedEngine:
    """A slot that takes audio / speed seconds of virtual time per chunk."""

    def __init__(self, clock: FakeClock, kind: str, speed: float, model: str = "tiny",
                 device: str | None = None, log: list[tuple[str, str, str]] | None = None
                 ) -> None:
        self.clock, self.speed = clock, speed
        self.device_kind, self.model = kind, model
        self.device_name = device or kind
        self.log = log if log is not None else []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        took = job.audio_s / self.speed
        await self.clock.sleep(took)
        self.log.append((job.video_id, self.device_kind, self.model))
        return ChunkResult([{"start": job.start_s, "end": job.end_s, "text": "x"}], "en",
                           took, self.device_name, self.model)


def learned(speeds: dict[str, tuple[str, float]]) -> PerformanceTracker:
    """A tracker that already knows each kind's speed (kind -> (model, x real time))."""
    return PerformanceTracker.from_samples(
        [PerfSample(kind, model, "", 1, a, a / x, 0.0) for kind, (model, x) in speeds.items()
         for a in (30.0, 60.0, 120.0, 300.0)])


def two_models(clock: FakeClock, log: list[tuple[str, str, str]], gpu_speed: float,
               cpus: int = 2, cpu_learned: bool = True) -> Dispatcher:
    """`ect` over one GPU slot running large-v3-turbo and `cpus` CPU slots running small
    at 4x, their speeds known (the CPU's only with `cpu_learned`)."""
    engines = [TimedEngine(clock, "gpu", gpu_speed, "large-v3-turbo", log=log),
               *(TimedEngine(clock, "cpu", 4.0, "small", log=log) for _ in range(cpus))]
    speeds = {"gpu": ("large-v3-turbo", gpu_speed)}
    if cpu_learned:
        speeds["cpu"] = ("small", 4.0)
    return Dispatcher(list(engines), policy="ect", clock=clock, tracker=learned(speeds))


def models_per_video(log: list[tuple[str, str, str]]) -> dict[str, set[str]]:
    models: dict[str, set[str]] = {}
    for vid, _, model in log:
        models.setdefault(vid, set()).add(model)
    return models


async def video(d: Dispatcher, vid: str, chunks: int, chunk_s: float) -> None:
    d.begin_video(vid, chunks * chunk_s)
    try:
        await asyncio.gather(*(d.run(ChunkJob(vid, i, "a", i * chunk_s, (i + 1) * chunk_s))
                               for i in range(chunks)))
    finally:
        d.end_video(vid)


async def cpu_chunks_per_wave(d: Dispatcher, clock: FakeClock,
                              log: list[tuple[str, str, str]], waves: int) -> list[int]:
    """Waves of two videos of 4 chunks of 5 min, ten more videos waiting behind each wave
    but the last (the feed stops): the chunks the CPU ran in each wave."""
    per_wave: list[int] = []
    for w in range(waves):
        d.upcoming_s = 10 * 4 * 300.0 if w < waves - 1 else 0.0
        before = len(log)
        task = asyncio.ensure_future(asyncio.gather(video(d, f"v{w}a", 4, 300.0),
                                                    video(d, f"v{w}b", 4, 300.0)))
        await clock.drive(task)
        await task
        per_wave.append(sum(1 for _, kind, _ in log[before:] if kind == "cpu"))
    return per_wave


def test_backlog_progress_follows_what_remains() -> None:
    b = Backlog()
    assert b.update(1000.0) == 0.0
    assert b.update(200.0) == 0.8
    assert b.update(600.0) == 0.4  # refilled: far from the end again
    assert b.update(0.0) == 0.0 and b.peak_s == 0.0  # empty: the next backlog starts anew
    assert b.update(50.0) == 0.0


async def test_a_daemon_keeps_the_cpu_busy_for_days_and_stops_it_near_the_end() -> None:
    """A steady feed of videos (analysis keeps 10 waiting): the CPU still gets chunks in
    the last waves of a long run; when the feed stops, the endgame rule takes the CPU off
    the last chunks. (Counted over everything ever seen, progress passed 0.8 within a few
    waves and the CPU never worked again.)"""
    clock = FakeClock()
    log: list[tuple[str, str, str]] = []
    engines = [TimedEngine(clock, "gpu", 20.0, log=log),
               TimedEngine(clock, "cpu", 4.0, log=log)]
    d = Dispatcher(list(engines), policy="benefit", clock=clock,
                   rules=Rules(max_cpu_time_s=1e9, stop_cpu_at_progress=0.8))
    # 120 waves x 2 videos x 4 chunks of 5 min: 80 hours of audio
    per_wave = await cpu_chunks_per_wave(d, clock, log, 120)
    assert all(n > 0 for n in per_wave[-20:-1]), per_wave
    assert per_wave[-1] == 0, per_wave  # the end of the backlog: GPU only


async def test_different_models_place_whole_videos() -> None:
    """GPU slots run one model, CPU slots another: every chunk of a video runs on one of
    them (ect sends short chunks to the CPU, which used to mix models in one transcript)."""
    clock = FakeClock()
    log: list[tuple[str, str, str]] = []
    d = two_models(clock, log, 20.0)
    assert d.per_video
    task = asyncio.ensure_future(asyncio.gather(
        *(video(d, f"v{i}", 6, 60.0 + 7 * i) for i in range(8))))
    await clock.drive(task)
    await task
    models = models_per_video(log)
    assert len(log) == 48
    assert all(len(m) == 1 for m in models.values()), models
    assert {m for ms in models.values() for m in ms} == {"large-v3-turbo", "small"}


async def test_with_two_models_the_cpu_takes_whole_videos_while_the_backlog_is_long() -> None:
    """A whole video on the CPU's slower model is never predicted to finish first among
    the videos in flight, so `ect` left the CPU idle through any backlog. The CPU takes
    a video when its slots finish it before the GPU would finish all that remains: in
    every wave while ten more videos wait, in none once the feed has stopped."""
    clock = FakeClock()
    log: list[tuple[str, str, str]] = []
    d = two_models(clock, log, 40.0)
    per_wave = await cpu_chunks_per_wave(d, clock, log, 6)
    assert per_wave[:5] == [4] * 5, per_wave  # one whole video of each wave
    assert per_wave[5] == 0, per_wave
    assert all(len(m) == 1 for m in models_per_video(log).values()), log


async def test_with_two_models_a_cpu_never_measured_is_tried_on_the_shortest_video() -> None:
    """The CPU's prior (24 s per audio second) would keep it off every video for good;
    while the backlog is long it is given the shortest waiting video, whole, and its
    speed is learned from it."""
    clock = FakeClock()
    log: list[tuple[str, str, str]] = []
    d = two_models(clock, log, 40.0, cpus=1, cpu_learned=False)
    d.upcoming_s = 50 * 1200.0
    task = asyncio.ensure_future(asyncio.gather(
        *(video(d, f"v{i}", 4, 100.0 + 50 * i) for i in range(5))))
    await clock.drive(task)
    await task
    on_cpu = [vid for vid, kind, _ in log if kind == "cpu"]
    # v0 is on the GPU before the other videos arrive; then v1 is the shortest waiting
    assert on_cpu[:4] == ["v1"] * 4, on_cpu  # all of it
    assert d.tracker.predict(d.key("cpu"), 60.0).learned

async def test_one_model_everywhere_places_chunks() -> None:
    clock = FakeClock()
    log: list[tuple[str, str, str]] = []
    engines = [TimedEngine(clock, "gpu", 20.0, log=log), TimedEngine(clock, "cpu", 4.0,
                                                                      log=log)]
    d = Dispatcher(list(engines), policy="ect", clock=clock,
                   tracker=learned({"gpu": ("tiny", 20.0), "cpu": ("tiny", 4.0)}))
    assert not d.per_video
    task = asyncio.ensure_future(video(d, "v", 12, 60.0))
    await clock.drive(task)
    await task
    by_kind = Counter(kind for _, kind, _ in log)
    assert by_kind["cpu"] > 0 and by_kind["gpu"] > by_kind["cpu"], by_kind


def test_gpu_slots_climb_while_throughput_rises_then_settle() -> None:
    s = gpu_slots.start(6)
    assert s.active == 2  # two processes nearly always beat one
    tput = {2: 80.0, 3: 90.0, 4: 91.0}  # saturating: the 4th slot adds 1 %
    for _ in range(3):
        s = gpu_slots.step(s, s.active, tput[s.active])
    assert s.active == 3 and s.settled, s
    assert "+1%" in s.reason
    fixed = gpu_slots.start(6, adaptive=False)
    assert fixed.active == 6 and gpu_slots.step(fixed, 6, 1.0) == fixed


async def test_dispatcher_uses_only_the_active_gpu_slots() -> None:
    """Of a VRAM ceiling of 4 GPU slots, the dispatcher starts with two and adds one while
    throughput rises."""
    clock = FakeClock()
    # contention: k slots share one GPU whose aggregate speed saturates at 2.5 slots' worth
    # (40, 80, 100, 100 x real time for 1..4 slots)

    class Shared(TimedEngine):
        async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
            busy = max(1, len(d.busy))
            self.speed = 40.0 * min(busy, 2.5) / busy
            return await super().transcribe(job, timeout_s)

    gpus = [Shared(clock, "gpu", 40.0, device="cuda:0") for _ in range(4)]
    d = Dispatcher(list(gpus), clock=clock, climb_interval_s=60.0)
    assert len(d.usable()) == 2
    assert d.status()["gpu"]["cuda:0"]["ceiling"] == 4
    task = asyncio.ensure_future(asyncio.gather(
        *(d.run(ChunkJob(f"v{i}", 0, "a", 0.0, 30.0)) for i in range(800))))
    await clock.drive(task)
    await task
    climb = d.status()["gpu"]["cuda:0"]
    assert climb["active"] == 3, climb  # the 4th slot added nothing and was dropped
    assert set(climb["audio_s_per_s"]) == {"2", "3", "4"}


# --------------------------------------------------------------------- benchmarks.scheduler_sim


async def test_the_simulator_drives_the_real_dispatcher_to_the_end() -> None:
    """`benchmarks.scheduler_sim` on a small mixed workload: every chunk is transcribed
    exactly once, no schedule beats the lower bound, the contention model slows the GPU,
    and with every slot of the ceiling active `ect` finishes no later than `gpu_only`."""
    from benchmarks import scheduler_sim as sim

    durations = sim.workloads(24, seed=3)["mixed"]
    devices = sim.PROFILES["1gpu+3cpu"]
    chunks = sum(len(sim.chunk_bounds(d, 900.0)) for d in durations)
    assert chunks > len(durations)  # some videos are cut into several chunks
    makespan: dict[tuple[str, bool, bool], float] = {}
    for policy in ("gpu_only", "ect"):
        for contention in (False, True):
            for adaptive in (False, True):
                o = await sim.simulate(durations, devices, policy, contention=contention,
                                       adaptive=adaptive, seed=3)
                assert o.chunks == chunks and set(o.done.values()) == {1}, o.done
                assert len(o.done) == chunks
                bound = sim.lower_bound(durations, devices, 900.0, contention,
                                        sim.noise_factors(durations, 0.1, 3, 900.0))
                assert o.makespan_s >= bound * (1 - 1e-9), (policy, contention, adaptive)
                makespan[policy, contention, adaptive] = o.makespan_s
    for contention in (False, True):
        assert makespan["ect", contention, False] <= makespan["gpu_only", contention, False]
        assert makespan["gpu_only", True, False] > makespan["gpu_only", False, False]


def test_contention_model_saturates_beyond_two_processes() -> None:
    from benchmarks.scheduler_sim import aggregate

    assert [aggregate(50.0, k, False) for k in (1, 2, 4)] == [50.0, 100.0, 200.0]
    with_it = [aggregate(50.0, k, True) for k in range(1, 9)]
    assert with_it[:2] == [50.0, 100.0]
    gains = [b / a - 1 for a, b in itertools.pairwise(with_it[1:])]
    assert all(g > 0 for g in gains) and gains == sorted(gains, reverse=True)
    assert gains[-1] < 0.05 < gains[0]  # the 8th process adds less than the climb's 5 %


async def test_simulated_gpu_chunks_take_their_modelled_time_beside_long_cpu_chunks() -> None:
    """A GPU process alone runs a chunk in audio / speed of virtual time, even while CPU
    slots hold long chunks (the GPU's wake-up used to be registered a task hop late, after
    the clock had jumped to the next CPU deadline: 892 s at 50x took 34-160 s, not 18)."""
    from benchmarks import scheduler_sim as sim

    gpu, cpu = sim.Device("gpu", 50.0, 1), sim.Device("cpu", 4.0, 3)
    durations = [900.0 * (1 + i % 3) for i in range(12)]
    took: list[tuple[float, float]] = []
    original = sim.SimEngine.transcribe

    async def timed(self: sim.SimEngine, job: ChunkJob, timeout_s: float) -> ChunkResult:
        began = self.clock.monotonic()
        result = await original(self, job, timeout_s)
        if self.device_kind == "gpu":
            work = job.audio_s * self.noise[f"{job.video_id}.{job.idx}"]
            took.append((self.clock.monotonic() - began, work / gpu.speed))
        return result

    sim.SimEngine.transcribe = timed  # type: ignore[method-assign]
    try:
        o = await sim.simulate(durations, [gpu, cpu], "round_robin", contention=True,
                               adaptive=False)
    finally:
        sim.SimEngine.transcribe = original  # type: ignore[method-assign]
    assert set(o.done.values()) == {1}
    assert len(took) > 5
    assert all(abs(actual - modelled) < 1e-6 * modelled for actual, modelled in took), took


async def _climb_on_shared_gpu(ceiling: int, chunks: int, chunk_s: float,
                               contention: bool) -> tuple[Dispatcher, list[int]]:
    """Equal chunks (no noise) through the real Dispatcher on the simulator's shared GPU
    (processor sharing: k processes deliver `aggregate(50, k)` together). Also returns the
    active slot count after each finished chunk."""
    from collections import Counter as C

    from benchmarks import scheduler_sim as sim

    clock = sim.SimClock()
    dev = sim.Device("gpu", 50.0, ceiling)
    gpu = sim.SharedGPU(clock, dev.speed, contention)
    noise = {f"v{i}.0": 1.0 for i in range(chunks)}
    engines = [sim.SimEngine(clock, dev, "cuda:0", noise, C(), gpu) for _ in range(ceiling)]
    d = Dispatcher(list(engines), clock=clock)
    active: list[int] = []
    d.on_sample = lambda _: active.append(d.climbs["cuda:0"].active)
    task = asyncio.ensure_future(asyncio.gather(
        *(d.run(ChunkJob(f"v{i}", 0, "a", 0.0, chunk_s)) for i in range(chunks))))
    await clock.drive(task)
    await task
    return d, active


async def test_the_climb_measures_each_count_at_the_gpus_aggregate_speed() -> None:
    """Long chunks (900 s, 9-36 s each on the GPU): every count the climb tried is measured
    at the aggregate speed the GPU delivers with that many processes (the old 120-s
    intervals counted only the chunks that happened to finish in them: 900-s chunks made
    the figures swing and the climb stop short)."""
    from benchmarks.scheduler_sim import aggregate

    d, _ = await _climb_on_shared_gpu(6, 400, 900.0, contention=True)
    climb = d.climbs["cuda:0"]
    assert len(climb.tput) >= 3, climb
    for k, measured in climb.tput.items():
        assert abs(measured / aggregate(50.0, k, True) - 1) < 0.02, (k, climb.tput)
    # +13 %, +9 %, +6.9 %, +5.6 % for the 3rd..6th process: every step up pays
    assert climb.active == 6, climb


async def test_the_climb_reaches_the_ceiling_early_when_every_slot_adds_speed() -> None:
    """Without contention every slot adds its full speed: the climb starts at two and steps
    as soon as the runs show the rise, so it is at the ceiling of 8 before a quarter of the
    work is done (from one slot and one step per 120 s it took most of the run)."""
    d, active = await _climb_on_shared_gpu(8, 240, 900.0, contention=False)
    assert d.climbs["cuda:0"].active == 8
    assert active[0] == 2 and active.index(8) < len(active) // 4, active


def test_a_clear_rise_is_decided_early_and_a_marginal_one_waits_for_more_runs() -> None:
    s = gpu_slots.SlotClimb(8, 3, tput={2: 100.0}, stderr={2: 1.0}, last_step=+1)
    assert not gpu_slots.enough(s, 3, 150.0, 1.0, 5)  # fewer than two runs per slot
    assert gpu_slots.enough(s, 3, 150.0, 1.0, 6)  # +50 %: clear after two runs per slot
    assert not gpu_slots.enough(s, 3, 105.5, 2.0, 6)  # +5.5 % +- 2.2 %: not yet
    assert not gpu_slots.enough(s, 3, 105.5, 2.0, 23)
    assert gpu_slots.enough(s, 3, 105.5, 2.0, 24)  # eight runs per slot: decide anyway



def test_a_slot_is_dropped_only_when_its_rise_is_clearly_under_the_gain() -> None:
    """After eight runs per slot a marginal rise is decided anyway: a rise whose shortfall
    is within two standard errors of 5 % keeps the slot (the cost is memory), a clear
    shortfall drops it. Noisy runs used to drop a slot that added 9 % (simulation)."""
    s = gpu_slots.SlotClimb(8, 4, tput={3: 100.0}, stderr={3: 2.0}, last_step=+1)
    marginal = gpu_slots.step(s, 4, 103.0, stderr=2.0)  # +3 % +- 2.8 %
    assert marginal.active == 4 and marginal.settled and "kept" in marginal.reason
    sure = dataclasses.replace(s, stderr={3: 0.5})
    clear = gpu_slots.step(sure, 4, 101.0, stderr=0.5)  # +1 % +- 0.7 %
    assert clear.active == 3 and clear.settled and "dropped" in clear.reason
    rising = gpu_slots.step(s, 4, 109.0, stderr=2.0)
    assert rising.active == 5 and not rising.settled

class BatchingEngine(TimedEngine):
    """A CPU slot that runs waiting chunks of other videos with its own as one batch."""

    def __init__(self, clock: FakeClock, batches: list[tuple[str, list[str]]], name: str
                 ) -> None:
        super().__init__(clock, "cpu", 10.0, device=name)
        self.max_batch = 8  # 30-s windows per batched pass
        self.multilingual = False
        self.batches = batches

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        return (await self.transcribe_batch([job], timeout_s))[0]

    async def transcribe_batch(self, jobs: list[ChunkJob], timeout_s: float
                               ) -> list[ChunkResult]:
        self.batches.append((self.device_name, [j.video_id for j in jobs]))
        return [await super(BatchingEngine, self).transcribe(j, timeout_s) for j in jobs]


async def test_batches_fill_a_slots_windows_and_leave_work_for_the_other_slot() -> None:
    """Six files of 109 s (four 30-s windows each) on two batching slots: a batch takes
    two (eight windows, the batch size), and no slot takes work that the other free slot
    could run beside it (a batch once took four files while the other slot idled)."""
    clock = FakeClock()
    batches: list[tuple[str, list[str]]] = []
    d = Dispatcher([BatchingEngine(clock, batches, "cpu0"), BatchingEngine(clock, batches,
                                                                          "cpu1")],
                   policy="ect", clock=clock)
    task = asyncio.ensure_future(asyncio.gather(*(video(d, f"v{i}", 1, 109.0)
                                                  for i in range(6))))
    await clock.drive(task)
    await task
    assert sorted(v for _, vids in batches for v in vids) == [f"v{i}" for i in range(6)]
    assert all(len(vids) <= 2 for _, vids in batches), batches
    assert {batches[0][0], batches[1][0]} == {"cpu0", "cpu1"}, batches  # both at once
    # v0 and v1 start alone (nothing else waits yet), then two batches of two
    assert len(batches) == 4, batches


async def test_ect_measures_a_device_kind_it_has_never_run() -> None:
    """Beside a slow GPU (learned: 3x real time) a CPU never measured is predicted at the
    pessimistic prior (24 s per audio second), so `ect` never gave it a chunk and never
    learned that it is faster here (5x). It now takes the shortest waiting chunks until
    its speed is known, and then its share by earliest completion."""
    clock = FakeClock()
    log: list[tuple[str, str, str]] = []
    engines = [TimedEngine(clock, "gpu", 3.0, log=log), TimedEngine(clock, "cpu", 5.0, log=log)]
    tracker = learned({"gpu": ("tiny", 3.0)})
    d = Dispatcher(list(engines), policy="ect", clock=clock, tracker=tracker)
    cpu_key = d.key("cpu")
    assert not tracker.predict(cpu_key, 60.0).learned
    task = asyncio.ensure_future(video(d, "v", 40, 60.0))
    await clock.drive(task)
    await task
    by_kind = Counter(kind for _, kind, _ in log)
    assert tracker.predict(cpu_key, 60.0).learned
    assert tracker.speed(cpu_key) > tracker.speed(d.key("gpu"))
    # measured faster, the CPU then runs more than the GPU (it ran nothing before)
    assert by_kind["cpu"] > by_kind["gpu"] > 0, by_kind


async def test_one_kind_of_slot_is_not_explored_out_of_order() -> None:
    """Only CPU slots: nothing to compare, so chunks go longest first as always."""
    clock = FakeClock()
    order: list[float] = []

    class Logged(TimedEngine):
        async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
            order.append(job.audio_s)
            return await super().transcribe(job, timeout_s)

    d = Dispatcher([Logged(clock, "cpu", 5.0)], policy="ect", clock=clock)
    d.begin_video("v", 600.0)
    task = asyncio.ensure_future(asyncio.gather(
        *(d.run(ChunkJob("v", i, "a", 0.0, s)) for i, s in enumerate((30.0, 90.0, 60.0)))))
    await clock.drive(task)
    await task
    assert order[1:] == sorted(order[1:], reverse=True)
