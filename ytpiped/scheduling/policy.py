"""Allocation policies: which waiting chunk goes to which free slot, now. Pure.

`assign(policy, queue, slots, predict, progress, now, cfg)` returns assignments for free
slots only; a job left out waits. `predict(kind, audio_s)` is the tracker's predicted
processing time.

- `gpu_only`: FIFO onto free GPU slots.
- `round_robin`: FIFO onto any free slot.
- `benefit`: the original rules: sort by GPU benefit (CPU time − GPU time), fill GPUs
  first, give the CPU a job only if it is predicted to take ≤ `max_cpu_time_s`, no new
  CPU work once `stop_cpu_at_progress` of the jobs are done, otherwise wait.
- `ect` (earliest completion time): longest job first; each job goes to the slot where it
  would finish first given every slot's backlog; if that slot is busy the job waits for
  it (so a slow CPU never holds a long job a GPU would finish sooner). Since a job only
  goes where it finishes first, the endgame needs no duplicated stragglers.

`progress` is the backlog's (`scheduling.backlog`), not the share of all jobs ever seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Predict = Callable[[str, float], float]
POLICIES = ("gpu_only", "round_robin", "benefit", "ect")


@dataclass(frozen=True)
class Job:
    id: str
    audio_s: float


@dataclass(frozen=True)
class Slot:
    id: str
    kind: str  # "gpu" | "cpu"
    busy_until: float | None = None  # None: free


@dataclass(frozen=True)
class Assignment:
    job: Job
    slot_id: str


@dataclass(frozen=True)
class Rules:
    max_cpu_time_s: float = 300.0
    stop_cpu_at_progress: float = 0.8


def assign(policy: str, queue: Sequence[Job], slots: Sequence[Slot], predict: Predict,
           progress: float, now: float, rules: Rules = Rules()) -> list[Assignment]:
    free = [s for s in slots if s.busy_until is None]
    if not free:
        return []
    if policy == "gpu_only":
        gpus = [s for s in free if s.kind == "gpu"]
        return [Assignment(j, s.id) for j, s in zip(queue, gpus, strict=False)]
    if policy == "round_robin":
        order = sorted(free, key=lambda s: s.kind != "gpu")
        return [Assignment(j, s.id) for j, s in zip(queue, order, strict=False)]
    if policy == "benefit":
        return _benefit(queue, free, predict, progress, rules)
    if policy == "ect":
        return _ect(queue, slots, predict, now)
    raise ValueError(f"unknown policy {policy!r} (one of {', '.join(POLICIES)})")


def _benefit(queue: Sequence[Job], free: list[Slot], predict: Predict, progress: float,
             rules: Rules) -> list[Assignment]:
    jobs = sorted(queue, key=lambda j: predict("cpu", j.audio_s) - predict("gpu", j.audio_s),
                  reverse=True)
    gpus = [s for s in free if s.kind == "gpu"]
    cpus = [s for s in free if s.kind == "cpu"]
    out: list[Assignment] = []
    for job in jobs:
        if gpus:
            out.append(Assignment(job, gpus.pop(0).id))
            continue
        if progress >= rules.stop_cpu_at_progress or not cpus:
            break  # wait for a GPU slot
        if predict("cpu", job.audio_s) <= rules.max_cpu_time_s:
            out.append(Assignment(job, cpus.pop(0).id))
            continue
        break  # too long for the CPU: wait (the original stops at the first such job)
    return out


def _ect(queue: Sequence[Job], slots: Sequence[Slot], predict: Predict,
         now: float) -> list[Assignment]:
    ready = {s.id: (now if s.busy_until is None else max(now, s.busy_until)) for s in slots}
    kind = {s.id: s.kind for s in slots}
    free = {s.id for s in slots if s.busy_until is None}
    out: list[Assignment] = []
    kinds = set(kind.values())
    for job in sorted(queue, key=lambda j: -j.audio_s):
        took = {k: predict(k, job.audio_s) for k in kinds}
        best = min(ready, key=lambda sid: (ready[sid] + took[kind[sid]], kind[sid] != "gpu"))
        ready[best] += took[kind[best]]
        if best in free:
            out.append(Assignment(job, best))
            free.discard(best)
        if not free:
            break
    return out
