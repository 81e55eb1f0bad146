"""The runtime side of transcription scheduling: shares the slots (one Engine each) between
the chunks of every video in flight, using the pure policy (`scheduling.policy.assign`),
the learned speeds (`scheduling.tracker`) and the failure rules (`scheduling.failures`).

Every change (a chunk submitted, a slot freed) runs one decision; a chunk's coroutine
waits on a future that the decision resolves with its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from ytpiped.scheduling import failures
from ytpiped.scheduling.policy import Job, Rules, Slot, assign
from ytpiped.scheduling.tracker import Key, PerformanceTracker, PerfSample

WINDOW = 64  # queued chunks offered to the policy per decision (longest first)


@dataclass
class _Waiting:
    job: ChunkJob
    future: asyncio.Future[Engine]
    only_kind: str | None = None  # a retry after a GPU failure goes to the CPU


@dataclass
class _Busy:
    job: ChunkJob
    until: float


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

    def __post_init__(self) -> None:
        self.waiting: list[_Waiting] = []
        self.busy: dict[int, _Busy] = {}
        self.started = time.monotonic()
        self.audio_done_s = 0.0
        self.busy_s = {"gpu": 0.0, "cpu": 0.0}
        self.done = 0
        self.last_tick = self.started
        self.job_waited_s = 0.0  # chunks queued and no slot free
        self.idle_no_work_s = 0.0  # a slot free and nothing queued

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self.last_tick = now - self.last_tick, now
        free = len(self.engines) - len(self.busy)
        if self.waiting and free == 0:
            self.job_waited_s += dt
        elif free > 0 and not self.waiting and self.done:
            self.idle_no_work_s += dt

    @classmethod
    def of(cls, engines: Sequence[Engine], **kw: Any) -> Dispatcher:
        return cls(list(engines), **kw)

    # ------------------------------------------------------------------ predictions

    def key(self, kind: str) -> Key:
        model = next((e.model for e in self.engines if e.device_kind == kind), "")
        return Key(kind, model, self.compute_types.get(kind, ""), self.batch_sizes.get(kind, 1))

    def predict(self, kind: str, audio_s: float) -> float:
        return self.tracker.predict(self.key(kind), audio_s).seconds

    # ------------------------------------------------------------------ decisions

    def _slots(self) -> list[Slot]:
        out = []
        for e in self.engines:
            b = self.busy.get(id(e))
            out.append(Slot(str(id(e)), e.device_kind, None if b is None else b.until,
                            None if b is None else Job(b.job.video_id, b.job.audio_s)))
        return out

    def _schedule(self) -> None:
        self._tick()
        self.waiting = [w for w in self.waiting if not w.future.done()]
        if not self.waiting:
            return
        by_id = {str(id(e)): e for e in self.engines}
        now = time.monotonic()
        for w in [w for w in self.waiting if w.only_kind]:  # constrained retries first
            free = [e for e in self.engines if id(e) not in self.busy
                    and e.device_kind == w.only_kind]
            if free:
                self._give(w, free[0], now)
        free_any = [e for e in self.engines if id(e) not in self.busy]
        if not free_any:
            return
        queue = sorted((w for w in self.waiting if not w.only_kind),
                       key=lambda w: -w.job.audio_s)[:WINDOW]
        jobs = {f"{w.job.video_id}#{w.job.idx}": w for w in queue}
        total = self.done + len(self.waiting) + len(self.busy)
        assignments = assign(self.policy, [Job(k, w.job.audio_s) for k, w in jobs.items()],
                             self._slots(), self.predict, self.done / max(1, total), now,
                             self.rules)
        if not assignments and not self.busy and queue:  # the rules would wait forever
            assignments = assign("round_robin", [Job(k, w.job.audio_s)
                                                 for k, w in jobs.items()],
                                 self._slots(), self.predict, 0.0, now)
        for a in assignments:
            if a.duplicate or a.job.id not in jobs:
                continue
            self._give(jobs[a.job.id], by_id[a.slot_id], now)

    def _give(self, w: _Waiting, engine: Engine, now: float) -> None:
        self.busy[id(engine)] = _Busy(w.job, now + self.predict(engine.device_kind,
                                                                 w.job.audio_s))
        self.waiting.remove(w)
        w.future.set_result(engine)

    # ------------------------------------------------------------------ running

    async def _acquire(self, job: ChunkJob, only_kind: str | None) -> Engine:
        fut: asyncio.Future[Engine] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(job, fut, only_kind))
        self._schedule()
        return await fut

    def _release(self, engine: Engine) -> None:
        self.busy.pop(id(engine), None)
        self._schedule()

    async def run(self, job: ChunkJob) -> ChunkResult:
        attempts, only_kind = 0, None
        while True:
            engine = await self._acquire(job, only_kind)
            kind = engine.device_kind
            timeout = self.predict(kind, job.audio_s) * self.timeout_factor + 60.0
            began = time.monotonic()
            try:
                result = await engine.transcribe(job, timeout)
            except (ModelUnavailable, EngineError) as exc:
                self.busy_s[kind] += time.monotonic() - began
                attempts += 1
                error = ("oom" if isinstance(exc, EngineOOM) else
                         "bad_audio" if isinstance(exc, BadAudioError | ModelUnavailable) else
                         "timeout" if isinstance(exc, EngineTimeout) else "crash")
                have_cpu = any(e.device_kind == "cpu" for e in self.engines if e is not engine)
                d = failures.on_failure(kind, error, attempts, self.max_attempts, have_cpu)
                if d.lower_gpu_slots and engine in self.engines:
                    self.engines.remove(engine)  # this GPU runs one slot fewer from now on
                    with contextlib.suppress(Exception):
                        await engine.close()
                self._release(engine)
                if d.give_up or not self.engines:
                    raise
                only_kind = "cpu" if d.retry_on == "cpu" and have_cpu else None
                continue
            except BaseException:
                self._release(engine)
                raise
            elapsed = time.monotonic() - began
            self.busy_s[kind] += elapsed
            self._release(engine)
            self.done += 1
            self.audio_done_s += job.audio_s
            k = self.key(kind)
            sample = PerfSample(k.device_kind, k.model, k.compute_type, k.batch_size, job.audio_s,
                            result.elapsed_s or elapsed, time.time())
            self.tracker.record(sample)
            if self.on_sample is not None:
                self.on_sample(sample)
            return result

    def usage(self, ram_free_bytes: int, cores: int) -> Any:
        from ytpiped.scheduling.suggest import Usage

        elapsed = max(1e-9, time.monotonic() - self.started)
        slots = {k: max(1, sum(1 for e in self.engines if e.device_kind == k))
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
        elapsed = max(1e-9, time.monotonic() - self.started)
        slots = {k: sum(1 for e in self.engines if e.device_kind == k) for k in ("gpu", "cpu")}
        return {
            "gpu_slots": slots["gpu"], "cpu_slots": slots["cpu"], "policy": self.policy,
            "busy_fraction_gpu": round(self.busy_s["gpu"] / (elapsed * slots["gpu"]), 3)
            if slots["gpu"] else 0.0,
            "busy_fraction_cpu": round(self.busy_s["cpu"] / (elapsed * slots["cpu"]), 3)
            if slots["cpu"] else 0.0,
            "running_jobs": len(self.busy), "waiting_chunks": len(self.waiting),
            "rate_audio_s_per_s": round(self.audio_done_s / elapsed, 2),
            "speed": {k: round(self.tracker.speed(self.key(k)), 2) for k, n in slots.items()
                      if n},
        }
