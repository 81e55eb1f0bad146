"""The runtime side of transcription scheduling: shares the slots (one Engine each) between
the chunks of every video in flight, using the pure policy (`scheduling.policy.assign`),
the learned speeds (`scheduling.tracker`), the failure rules (`scheduling.failures`), the
backlog's progress for the endgame rule (`scheduling.backlog`), batching
(`scheduling.batching`) and the GPU slot climb (`scheduling.gpu_slots`).

Every change (a chunk submitted, a slot freed) runs one decision; a chunk's coroutine
waits on a future that the slot's run resolves with its result. Time comes from an
injected clock, so `benchmarks.scheduler_sim` drives this very code on virtual time.

- One model per video: when the GPU and CPU slots run different models, the policy
  places whole videos (by their remaining audio), and every chunk of a video goes to
  slots of the kind it was placed on; with one model everywhere it places chunks. With
  `ect` a free CPU slot also takes the shortest waiting video when the CPU slots would
  finish it before the GPUs finish all that remains, backlog included (`ect` sees only
  the videos in flight, among which the slower model never finishes first).
- Batching: a slot that batches takes compatible waiting chunks of other videos with
  the chunk it is given (same language and options), as one batched forward pass, up to
  its batch size in 30-s windows and its fair share while other slots are free.
- Exploration: `ect` trusts predictions, so a kind of slot never measured (its prior is
  pessimistic) first gets the shortest waiting chunks (with one model per video: the
  shortest waiting video) until its speed is learned.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ytpiped.clock import Clock, SystemClock
from ytpiped.engines.base import (
    BadAudioError,
    ChunkJob,
    ChunkResult,
    Engine,
    EngineError,
    EngineOOM,
    EngineTimeout,
    ModelUnavailable,
)
from ytpiped.scheduling import batching, failures, gpu_slots
from ytpiped.scheduling.backlog import Backlog
from ytpiped.scheduling.policy import Job, Rules, Slot, assign
from ytpiped.scheduling.tracker import Key, PerformanceTracker, PerfSample

EXPLORE_UNTIL_PROGRESS = 0.5  # a device kind never measured is tried before this
WINDOW = 64  # queued chunks (or videos) offered to the policy per decision, longest first


@dataclass(eq=False)
class _Waiting:
    job: ChunkJob
    future: asyncio.Future[ChunkResult]
    only_kind: str | None = None  # a retry after a GPU failure goes to the CPU
    engine: Engine | None = None  # set when given a slot


@dataclass(eq=False)
class _Running:
    engine: Engine
    items: list[_Waiting]
    until: float
    task: asyncio.Task[None] | None = None
    began: float = 0.0
    area: float = 0.0  # the GPU meter's busy integral when this run began
    cohort: tuple[int, int] = (-1, -1)  # (the meter's generation, index) it counts in


@dataclass
class _Meter:
    """One GPU's aggregate throughput at its current active slot count, measured per run
    rather than per interval: a run that started after the count last changed and ran
    with `busy` processes on the GPU on average (processor sharing) shows the GPU
    delivering busy × audio ÷ elapsed. So the estimate does not depend on how many chunks
    happen to finish in a window (a few 900-s chunks made 120-s windows too coarse), and a
    run on a GPU that was not kept full (the queue ran dry) is left out."""

    active: int
    since: float  # when `active` was set; runs that started earlier are not counted
    busy: int = 0  # runs on this GPU now
    area: float = 0.0  # integral of `busy` over time
    last: float = 0.0
    # one entry per run started since, in start order: None while it runs, then its
    # aggregate estimate (NaN: left out). Only the prefix of finished runs is used: the
    # first runs to finish are the fast ones, and counting them alone read ~10 % high.
    cohort: list[float | None] = field(default_factory=list)
    generation: int = 0

    def estimate(self) -> tuple[float, float, int]:
        """The mean of the finished prefix's estimates, its standard error, and how many."""
        rates: list[float] = []
        for r in self.cohort:
            if r is None:
                break
            if r == r:  # not NaN
                rates.append(r)
        n = len(rates)
        if not n:
            return 0.0, 0.0, 0
        mean = sum(rates) / n
        var = sum((r - mean) ** 2 for r in rates) / (n - 1) if n > 1 else mean ** 2
        return mean, (var / n) ** 0.5, n

    def advance(self, now: float) -> None:
        self.area += self.busy * (now - self.last)
        self.last = now


@dataclass
class Dispatcher:
    engines: list[Engine]
    policy: str = "ect"
    rules: Rules = field(default_factory=Rules)
    tracker: PerformanceTracker = field(default_factory=PerformanceTracker)
    timeout_factor: float = 4.0
    max_attempts: int = 3
    compute_types: dict[str, str] = field(default_factory=dict)  # kind -> compute type
    batch_sizes: dict[str, int] = field(default_factory=dict)
    on_sample: Callable[[PerfSample], None] | None = None
    clock: Clock = field(default_factory=SystemClock)
    max_batch_audio_s: float = 600.0
    gpu_adaptive: bool = True
    climb_interval_s: float = 30.0  # the least time at one GPU slot count before a step

    def __post_init__(self) -> None:
        self.waiting: list[_Waiting] = []
        self.busy: dict[int, _Running] = {}
        self.started = self.clock.monotonic()
        self.audio_done_s = 0.0
        self.busy_s = {"gpu": 0.0, "cpu": 0.0}
        self.done = 0
        self.last_tick = self.started
        self.job_waited_s = 0.0  # chunks queued and no slot free
        self.idle_no_work_s = 0.0  # a slot free and nothing queued
        self.videos: dict[str, float] = {}  # video in flight -> audio not yet transcribed
        self.upcoming_s = 0.0  # audio of videos analyzed and waiting (set by the stage)
        self.pins: dict[str, str] = {}  # video -> device kind (one model per video)
        self.backlog = Backlog()
        self._keys: dict[str, Key] = {}  # kind -> tracker key (until a slot is removed)
        self._per_video: bool | None = None
        self.climbs: dict[str, gpu_slots.SlotClimb] = {}
        self.meters: dict[str, _Meter] = {}
        for dev in dict.fromkeys(e.device_name for e in self.engines
                                 if e.device_kind == "gpu"):
            n = sum(1 for e in self.engines if e.device_name == dev)
            self.climbs[dev] = gpu_slots.start(n, self.gpu_adaptive)
            self.meters[dev] = _Meter(self.climbs[dev].active, self.started,
                                      last=self.started)

    @classmethod
    def of(cls, engines: Sequence[Engine], **kw: Any) -> Dispatcher:
        return cls(list(engines), **kw)

    def _tick(self) -> None:
        now = self.clock.monotonic()
        dt, self.last_tick = now - self.last_tick, now
        free = len(self.usable()) - len(self.busy)
        if self.waiting and free <= 0:
            self.job_waited_s += dt
        elif free > 0 and not self.waiting and self.done:
            self.idle_no_work_s += dt

    # ------------------------------------------------------------------ slots and videos

    @property
    def per_video(self) -> bool:
        """Different models on GPU and CPU slots: a video stays on one of them."""
        if self._per_video is None:  # asked for every waiting chunk of every decision
            self._per_video = len({e.model for e in self.engines}) > 1
        return self._per_video

    def usable(self) -> list[Engine]:
        """Every CPU slot, and the GPU slots the climb keeps active (per GPU)."""
        out: list[Engine] = []
        seen: dict[str, int] = {}
        for e in self.engines:
            if e.device_kind == "gpu":
                seen[e.device_name] = seen.get(e.device_name, 0) + 1
                climb = self.climbs.get(e.device_name)
                if climb is not None and seen[e.device_name] > climb.active:
                    continue
            out.append(e)
        return out

    def begin_video(self, video_id: str, audio_s: float) -> None:
        """A video's chunks are about to be submitted (`audio_s`: what is left of it)."""
        self.videos[video_id] = audio_s

    def end_video(self, video_id: str) -> None:
        self.videos.pop(video_id, None)
        self.pins.pop(video_id, None)

    def model_for(self, video_id: str) -> str | None:
        """The model a video was placed on (one model per video), if placed."""
        kind = self.pins.get(video_id)
        return next((e.model for e in self.engines if e.device_kind == kind), None)

    def pin(self, video_id: str, model: str) -> None:
        """Keep a video on the slots running `model` (chunks done before a restart)."""
        kind = next((e.device_kind for e in self.engines if e.model == model), None)
        if kind is not None and self.per_video:
            self.pins[video_id] = kind

    # ------------------------------------------------------------------ predictions

    def key(self, kind: str) -> Key:
        if kind not in self._keys:  # asked slots x chunks times per decision
            model = next((e.model for e in self.engines if e.device_kind == kind), "")
            self._keys[kind] = Key(kind, model, self.compute_types.get(kind, ""),
                                   self.batch_sizes.get(kind, 1))
        return self._keys[kind]

    def predict(self, kind: str, audio_s: float) -> float:
        return self.tracker.predict(self.key(kind), audio_s).seconds

    # ------------------------------------------------------------------ decisions

    def _remaining_s(self) -> float:
        tracked = sum(self.videos.values())
        loose = sum(w.job.audio_s for w in self.waiting if w.job.video_id not in self.videos)
        loose += sum(w.job.audio_s for r in self.busy.values() for w in r.items
                     if w.job.video_id not in self.videos)
        return tracked + loose + self.upcoming_s

    def _constraint(self, w: _Waiting) -> str | None:
        if w.only_kind:
            return w.only_kind
        return self.pins.get(w.job.video_id) if self.per_video else None

    def _slots(self, usable: list[Engine]) -> list[Slot]:
        out = []
        for e in usable:
            r = self.busy.get(id(e))
            out.append(Slot(str(id(e)), e.device_kind, None if r is None else r.until))
        return out

    def _schedule(self) -> None:
        self._tick()
        self.waiting = [w for w in self.waiting if not w.future.done()]
        self.backlog.update(self._remaining_s())
        if not self.waiting:
            return
        self._constrained()
        self._by_policy()
        self._constrained()

    def _free(self, kind: str | None = None) -> list[Engine]:
        return [e for e in self.usable() if id(e) not in self.busy
                and (kind is None or e.device_kind == kind)]

    def _constrained(self) -> None:
        for w in sorted(self.waiting, key=lambda w: -w.job.audio_s):
            kind = self._constraint(w)
            if kind is None or w.future.done() or w not in self.waiting:
                continue
            if not any(e.device_kind == kind for e in self.engines):
                if w.only_kind is None:
                    self.pins.pop(w.job.video_id, None)  # that kind is gone: place again
                continue
            free = self._free(kind)
            if free:
                self._give(w, free[0])

    def _by_policy(self) -> None:
        usable = self.usable()
        if not self._free():
            return
        open_ = [w for w in self.waiting if self._constraint(w) is None]
        if not open_:
            return
        if self._explore(usable, open_):
            open_ = [w for w in open_ if w in self.waiting]
            if not open_ or not self._free():
                return
        by_id = {str(id(e)): e for e in usable}
        now = self.clock.monotonic()
        heads: dict[str, _Waiting] = {}
        if self.per_video:  # whole videos, by what is left of them
            for w in sorted(open_, key=lambda w: -w.job.audio_s):
                heads.setdefault(w.job.video_id, w)
            left = {v: max(self.videos.get(v, 0.0), sum(x.job.audio_s for x in open_
                                                           if x.job.video_id == v))
                    for v in heads}
            jobs = [Job(v, left[v]) for v in sorted(heads, key=lambda v: -left[v])][:WINDOW]
        else:
            for w in sorted(open_, key=lambda w: -w.job.audio_s)[:WINDOW]:
                heads[f"{w.job.video_id}#{w.job.idx}#{id(w)}"] = w
            jobs = [Job(k, w.job.audio_s) for k, w in heads.items()]
        assignments = assign(self.policy, jobs, self._slots(usable), self.predict,
                             self.backlog.progress, now, self.rules)
        if not assignments and not self.busy:  # the rules would wait forever
            assignments = assign("round_robin", jobs, self._slots(usable), self.predict,
                                 0.0, now)
        for a in assignments:
            w, engine = heads[a.job.id], by_id[a.slot_id]
            if w.future.done() or w not in self.waiting or id(engine) in self.busy:
                continue  # done, or already taken into another slot's batch
            if self.per_video:
                self.pins[w.job.video_id] = engine.device_kind
            self._give(w, engine)
        if self.per_video and self.policy == "ect":
            self._cpu_takes_backlog(jobs, heads, usable)

    def _cpu_takes_backlog(self, jobs: list[Job], heads: dict[str, _Waiting],
                           usable: list[Engine]) -> None:
        """One model per video, `ect`: the policy sees only the videos in flight, and a
        whole video on the slower CPU model is rarely predicted to finish first among
        them, so the CPU slots idled through a long backlog. A free CPU slot takes the
        shortest open video when its slots finish it (after what they hold) before the
        GPUs would finish all that remains (the backlog included), by measured speeds: the
        CPU adds its speed while the backlog is long and stops near its end."""
        gpus = sum(1 for e in usable if e.device_kind == "gpu")
        cpus = [e for e in usable if e.device_kind == "cpu"]
        if not gpus or not cpus or not (self._learned("gpu") and self._learned("cpu")):
            return  # the priors are pessimistic guesses: only measured speeds decide
        on_cpus = sum(self.videos.get(v, 0.0) for v, kind in self.pins.items()
                      if kind == "cpu")  # what the CPU slots already hold
        remaining = self._remaining_s()
        chunks = Counter(x.job.video_id for x in self.waiting)
        for job in sorted(jobs, key=lambda j: j.audio_s):
            free = [e for e in cpus if id(e) not in self.busy]
            if not free:
                return
            w = heads[job.id]
            if w.future.done() or w not in self.waiting or job.id in self.pins:
                continue
            cpu_done = max(self.predict("cpu", on_cpus + job.audio_s) / len(cpus),
                           self.predict("cpu", job.audio_s)
                           / max(1, min(chunks[job.id], len(cpus))))
            gpu_done = self.predict("gpu", max(0.0, remaining - on_cpus)) / gpus
            if cpu_done > gpu_done:
                return  # the shortest does not pay: no longer one does
            self.pins[job.id] = "cpu"
            on_cpus += job.audio_s
            self._give(w, free[0])

    def _learned(self, kind: str) -> bool:
        """Whether the speed of `kind`'s slots is measured (not its prior)."""
        return self.tracker.predict(self.key(kind), 60.0).learned

    def _explore(self, usable: list[Engine], open_: list[_Waiting]) -> bool:
        """`ect` places a chunk by predicted finish times, and a device kind that has never
        run one is predicted from a pessimistic prior (a CPU at 24 s per audio second),
        so beside a slow GPU it would never run one and never be measured. While much of
        the backlog remains, a free slot of a kind not yet learned (and not running a
        chunk now) takes the shortest waiting chunk; `MIN_SAMPLES` of them replace the
        prior with the kind's real speed. With one model per video it takes the shortest
        waiting video, whose other chunks follow it to that kind. Not when all slots are
        of one kind."""
        if self.policy != "ect" or len(open_) < 2 or \
                self.backlog.progress >= EXPLORE_UNTIL_PROGRESS or \
                len({e.device_kind for e in usable}) < 2:
            return False
        running = {r.engine.device_kind for r in self.busy.values()}
        for engine in self._free():
            kind = engine.device_kind
            if kind in running or self._learned(kind):
                continue
            if self.per_video:
                if any(k == kind for k in self.pins.values()):
                    continue  # a video of this kind is being measured already
                left: dict[str, float] = {}
                for x in open_:
                    left[x.job.video_id] = left.get(x.job.video_id, 0.0) + x.job.audio_s
                video = min(left, key=lambda v: left[v])
                w = max((x for x in open_ if x.job.video_id == video),
                        key=lambda x: x.job.audio_s)
                self.pins[video] = kind
            else:
                w = min(open_, key=lambda x: x.job.audio_s)
            self._give(w, engine)
            return True
        return False

    def _give(self, w: _Waiting, engine: Engine) -> None:
        items = [w]
        max_batch = int(getattr(engine, "max_batch", 1))
        if max_batch > 1 and hasattr(engine, "transcribe_batch") and not w.job.detect_only:
            known = w.job.language is not None or getattr(engine, "multilingual", None) is False
            if known:
                others = {str(id(x)): x for x in self.waiting
                          if x is not w and not x.future.done()
                          and self._constraint(x) in (None, engine.device_kind)}
                # a fair share: chunks that another free slot could run beside this
                # one are not taken into this batch
                share = -(-(len(others) + 1) // max(1, len(self._free())))
                chosen = batching.pick(
                    batching.Candidate(str(id(w)), w.job.audio_s, w.job.group),
                    [batching.Candidate(k, x.job.audio_s, x.job.group)
                     for k, x in others.items()],
                    max_batch, self.max_batch_audio_s, max_items=share)
                items += [others[c.id] for c in chosen[1:]]
        audio = sum(x.job.audio_s for x in items)
        now = self.clock.monotonic()
        run = _Running(engine, items, now + self.predict(engine.device_kind, audio),
                       began=now)
        for x in items:
            self.waiting.remove(x)
            x.engine = engine
            if self.per_video:
                self.pins.setdefault(x.job.video_id, engine.device_kind)
        self.busy[id(engine)] = run
        meter = self.meters.get(engine.device_name) if engine.device_kind == "gpu" else None
        if meter is not None:
            meter.advance(run.began)
            meter.busy += 1
            run.area = meter.area
            run.cohort = (meter.generation, len(meter.cohort))
            meter.cohort.append(None)
        run.task = asyncio.get_running_loop().create_task(
            self._execute(run), name=f"transcribe:{engine.device_name}")

    # ------------------------------------------------------------------ running

    async def _execute(self, run: _Running) -> None:
        engine, jobs = run.engine, [w.job for w in run.items]
        kind = engine.device_kind
        timeout = self.predict(kind, sum(j.audio_s for j in jobs)) * self.timeout_factor + 60.0
        began = self.clock.monotonic()
        outs: Sequence[ChunkResult | BaseException] = []
        try:
            if len(jobs) == 1:
                try:
                    outs = [await engine.transcribe(jobs[0], timeout)]
                except EngineError as exc:
                    outs = [exc]
            else:
                outs = await engine.transcribe_batch(jobs, timeout)  # type: ignore[attr-defined]
        except EngineError as exc:
            outs = [exc] * len(jobs)
        except asyncio.CancelledError:
            for w in run.items:
                w.future.cancel()
            raise
        except Exception as exc:  # not the engine's: every caller sees it as it is
            outs = [exc] * len(jobs)
        finally:
            self.busy_s[kind] += self.clock.monotonic() - began
            if self.busy.get(id(engine)) is run:
                del self.busy[id(engine)]
            if kind == "gpu":
                self._measure(run, ok=bool(outs) and all(isinstance(o, ChunkResult)
                                                         for o in outs))
            self._schedule_soon()
        for w, out in zip(run.items, outs, strict=True):
            if w.future.done():
                continue
            if isinstance(out, BaseException):
                w.future.set_exception(out)
            else:
                w.future.set_result(out)

    def _schedule_soon(self) -> None:
        with contextlib.suppress(RuntimeError):  # no loop: nothing left to schedule
            asyncio.get_running_loop().call_soon(self._schedule)

    async def _cancel(self, w: _Waiting) -> None:
        """The caller of `run` was cancelled: forget its chunk; stop its slot's run when
        no other caller waits for it."""
        if w in self.waiting:
            self.waiting.remove(w)
            return
        run = next((r for r in self.busy.values() if w in r.items), None)
        if not w.future.done():
            w.future.cancel()
        if run is None or run.task is None:
            return
        if all(x.future.done() for x in run.items):
            run.task.cancel()
            await asyncio.wait({run.task})

    async def run(self, job: ChunkJob) -> ChunkResult:
        attempts, only_kind = 0, None
        loop = asyncio.get_running_loop()
        while True:
            w = _Waiting(job, loop.create_future(), only_kind)
            self.waiting.append(w)
            self._schedule()
            try:
                result = await w.future
            except asyncio.CancelledError:
                await self._cancel(w)
                raise
            except EngineError as exc:
                engine = w.engine
                assert engine is not None
                kind = engine.device_kind
                attempts += 1
                error = ("oom" if isinstance(exc, EngineOOM) else
                         "bad_audio" if isinstance(exc, BadAudioError | ModelUnavailable) else
                         "timeout" if isinstance(exc, EngineTimeout) else "crash")
                have_cpu = any(e.device_kind == "cpu" for e in self.engines if e is not engine)
                d = failures.on_failure(kind, error, attempts, self.max_attempts, have_cpu)
                if d.lower_gpu_slots and engine in self.engines:
                    self.engines.remove(engine)  # this GPU runs one slot fewer from now on
                    self._keys.clear()
                    self._per_video = None
                    climb = self.climbs.get(engine.device_name)
                    if climb is not None:
                        self.climbs[engine.device_name] = gpu_slots.SlotClimb(
                            max(0, climb.ceiling - 1), max(1, min(climb.active,
                                                                  climb.ceiling - 1)),
                            settled=True, hold=-1 if climb.hold < 0 else 8,
                            reason="CUDA out of memory: one slot fewer")
                    with contextlib.suppress(Exception):
                        await engine.close()
                if d.give_up or not self.engines:
                    raise
                only_kind = "cpu" if d.retry_on == "cpu" and have_cpu else None
                if self.per_video and only_kind is None:
                    only_kind = self.pins.get(job.video_id)  # stay on the video's model
                continue
            assert w.engine is not None
            self._record(w.engine, job, result)
            return result

    def _record(self, engine: Engine, job: ChunkJob, result: ChunkResult) -> None:
        kind = engine.device_kind
        self.done += 1
        self.audio_done_s += job.audio_s
        if job.video_id in self.videos and not job.detect_only:
            self.videos[job.video_id] = max(0.0, self.videos[job.video_id] - job.audio_s)
        if job.detect_only:
            return  # a language detection says nothing about transcription speed
        k = self.key(kind)
        sample = PerfSample(k.device_kind, k.model, k.compute_type, k.batch_size, job.audio_s,
                            result.elapsed_s, self.clock.now())
        self.tracker.record(sample)
        if self.on_sample is not None:
            self.on_sample(sample)

    def _measure(self, run: _Running, ok: bool) -> None:
        """A GPU run ended: count it towards the throughput at the active slot count; once
        enough runs are counted (two per active slot, and `climb_interval_s` passed), one
        climb step."""
        device = run.engine.device_name
        meter, climb = self.meters.get(device), self.climbs.get(device)
        if meter is None or climb is None:
            return
        now = self.clock.monotonic()
        meter.advance(now)
        meter.busy -= 1
        elapsed = now - run.began
        if climb.active != meter.active:  # set elsewhere (one slot fewer after an OOM)
            self._restart_meter(device, climb.active, now)
            return
        gen, idx = run.cohort
        if gen != meter.generation or climb.hold < 0:
            return  # started at another count
        busy = (meter.area - run.area) / elapsed if elapsed > 0 else 0.0
        # a failed run, or one on a GPU not kept full (or still running a dropped slot's
        # chunk), says nothing about this count
        meter.cohort[idx] = (busy * sum(w.job.audio_s for w in run.items) / elapsed
                             if ok and abs(busy - meter.active) <= 0.25 else math.nan)
        mean, stderr, n = meter.estimate()
        if (now - meter.since < self.climb_interval_s
                or not gpu_slots.enough(climb, meter.active, mean, stderr, n)):
            return
        self.climbs[device] = gpu_slots.step(climb, meter.active, mean, stderr=stderr)
        self._restart_meter(device, self.climbs[device].active, now)

    def _restart_meter(self, device: str, active: int, now: float) -> None:
        old = self.meters[device]
        self.meters[device] = _Meter(active, now, old.busy, old.area, now,
                                     generation=old.generation + 1)

    # ------------------------------------------------------------------ reporting

    def usage(self, ram_free_bytes: int, cores: int) -> Any:
        from ytpiped.scheduling.suggest import Usage

        elapsed = max(1e-9, self.clock.monotonic() - self.started)
        slots = {k: max(1, sum(1 for e in self.usable() if e.device_kind == k))
                 for k in ("gpu", "cpu")}
        cpu_speed = self.tracker.speed(self.key("cpu"))
        return Usage(busy_gpu=self.busy_s["gpu"] / (elapsed * slots["gpu"]),
                     busy_cpu=self.busy_s["cpu"] / (elapsed * slots["cpu"]),
                     job_waited=self.job_waited_s / elapsed,
                     slot_idle_no_work=self.idle_no_work_s / elapsed,
                     speed_gpu=self.tracker.speed(self.key("gpu")), speed_cpu=cpu_speed,
                     avg_cpu_job_s=self.predict("cpu", 600.0), ram_free_bytes=ram_free_bytes,
                     cores=cores)

    def status(self) -> dict[str, Any]:
        elapsed = max(1e-9, self.clock.monotonic() - self.started)
        usable = self.usable()
        slots = {k: sum(1 for e in usable if e.device_kind == k) for k in ("gpu", "cpu")}
        return {
            "gpu_slots": slots["gpu"], "cpu_slots": slots["cpu"], "policy": self.policy,
            "gpu_slots_ceiling": sum(c.ceiling for c in self.climbs.values()),
            "gpu": {dev: {"active": c.active, "ceiling": c.ceiling, "why": c.reason,
                          "audio_s_per_s": {str(k): round(v, 2) for k, v in c.tput.items()}}
                    for dev, c in self.climbs.items()},
            "busy_fraction_gpu": round(self.busy_s["gpu"] / (elapsed * slots["gpu"]), 3)
            if slots["gpu"] else 0.0,
            "busy_fraction_cpu": round(self.busy_s["cpu"] / (elapsed * slots["cpu"]), 3)
            if slots["cpu"] else 0.0,
            "running_jobs": sum(len(r.items) for r in self.busy.values()),
            "waiting_chunks": len(self.waiting),
            "backlog": {"remaining_audio_s": round(self.backlog.remaining_s, 1),
                        "progress": round(self.backlog.progress, 3)},
            "one_model_per_video": self.per_video,
            "rate_audio_s_per_s": round(self.audio_done_s / elapsed, 2),
            "speed": {k: round(self.tracker.speed(self.key(k)), 2) for k, n in slots.items()
                      if n},
        }
