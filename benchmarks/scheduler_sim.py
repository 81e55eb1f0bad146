"""Discrete-event simulation of the transcription policies (virtual time, no sleeping).

Workloads: 7,000 videos with log-normal durations (median 45 min), short clips, a mix.
Profiles: 1 GPU (50x) + 3 CPU slots (4x), 2 GPUs + 3 CPU, CPU only, a slow GPU (12x).
Actual times carry log-normal noise around the predictions. For each policy the makespan
is compared with the lower bound max(total work / total speed, the longest piece on the
fastest device); long videos are cut into chunks of at most `--max-chunk` seconds.

    python -m benchmarks.scheduler_sim [--workload FILE] [--videos 7000]

FILE: {"durations_s": [...], "devices": [{"kind": "gpu", "speed": 50.0, "slots": 1},
       {"kind": "cpu", "speed": 4.0, "slots": 3}], "noise": 0.1, "seed": 1}
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytpiped.scheduling.policy import POLICIES, Job, Rules, Slot, assign

WINDOW = 64  # jobs offered to the policy per decision (the queue is kept longest first)


@dataclass(frozen=True)
class Device:
    kind: str
    speed: float
    slots: int


PROFILES: dict[str, list[Device]] = {
    "1gpu+3cpu": [Device("gpu", 50.0, 1), Device("cpu", 4.0, 3)],
    "2gpu+3cpu": [Device("gpu", 50.0, 2), Device("cpu", 4.0, 3)],
    "cpu_only": [Device("cpu", 4.0, 3)],
    "slow_gpu+3cpu": [Device("gpu", 12.0, 1), Device("cpu", 4.0, 3)],
}


def workloads(videos: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    long = [rng.lognormvariate(math.log(2700), 0.6) for _ in range(videos)]
    clips = [rng.uniform(20, 300) for _ in range(videos)]
    mixed = [long[i] if i % 2 else clips[i] for i in range(videos)]
    return {"podcasts": long, "short_clips": clips, "mixed": mixed}


def chunks(durations: list[float], max_chunk: float) -> list[Job]:
    jobs = []
    for v, d in enumerate(durations):
        n = max(1, math.ceil(d / max_chunk))
        jobs += [Job(f"{v}.{i}", d / n) for i in range(n)]
    return sorted(jobs, key=lambda j: -j.audio_s)


def lower_bound(jobs: list[Job], devices: list[Device]) -> float:
    total_speed = sum(d.speed * d.slots for d in devices)
    fastest = max(d.speed for d in devices)
    return max(sum(j.audio_s for j in jobs) / total_speed,
               max(j.audio_s for j in jobs) / fastest)


def simulate(jobs: list[Job], devices: list[Device], policy: str, noise: float,
             seed: int) -> float | None:
    rng = random.Random(seed)
    speed = {d.kind: d.speed for d in devices}  # one speed per kind in these profiles
    if policy == "gpu_only" and "gpu" not in speed:
        return None

    def predict(kind: str, audio: float) -> float:
        return audio / speed[kind] if kind in speed else float("inf")

    factor = {j.id: rng.lognormvariate(0.0, noise) for j in jobs}
    slots = {f"{d.kind}{i}": Slot(f"{d.kind}{i}", d.kind) for d in devices
             for i in range(d.slots)}
    queue = list(jobs)
    events: list[tuple[float, str, str]] = []  # (end, slot, job id)
    done = 0
    now, total = 0.0, len(jobs)
    while done < total:
        offered = queue[:WINDOW]
        assignments = assign(policy, offered, list(slots.values()), predict,
                             done / total, now, Rules())
        if not assignments and not events and queue:  # rules would wait forever: any slot
            free = [s for s in slots.values() if s.busy_until is None]
            assignments = assign("round_robin", offered, free, predict, 0.0, now)
        for a in assignments:
            s = slots[a.slot_id]
            end = now + predict(s.kind, a.job.audio_s) * factor[a.job.id]
            slots[a.slot_id] = Slot(s.id, s.kind, end)
            heapq.heappush(events, (end, s.id, a.job.id))
            queue.remove(a.job)
        end, sid, _ = heapq.heappop(events)
        now = end
        slots[sid] = Slot(sid, slots[sid].kind)
        done += 1
    return now


def run(durations: list[float], devices: list[Device], noise: float, seed: int,
        max_chunk: float, workload: str, profile: str) -> list[dict[str, Any]]:
    jobs = chunks(durations, max_chunk)
    lb = lower_bound(jobs, devices)
    out = []
    for policy in POLICIES:
        makespan = simulate(jobs, devices, policy, noise, seed)
        if makespan is None:
            continue
        out.append({"workload": workload, "profile": profile, "policy": policy,
                    "makespan_s": round(makespan, 1), "lower_bound_s": round(lb, 1),
                    "ratio": round(makespan / lb, 4)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", type=Path, help="JSON workload file (see above)")
    ap.add_argument("--videos", type=int, default=7000)
    ap.add_argument("--max-chunk", type=float, default=900.0)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    if args.workload:
        spec = json.loads(args.workload.read_text())
        devices = [Device(d["kind"], float(d["speed"]), int(d["slots"]))
                   for d in spec["devices"]]
        results += run([float(x) for x in spec["durations_s"]], devices,
                       float(spec.get("noise", args.noise)), int(spec.get("seed", args.seed)),
                       args.max_chunk, args.workload.name, "file")
    else:
        for wname, durations in workloads(args.videos, args.seed).items():
            for pname, devices in PROFILES.items():
                results += run(durations, devices, args.noise, args.seed, args.max_chunk,
                               wname, pname)
    print(f"{'workload':<13}{'profile':<15}{'policy':<13}{'makespan h':>11}{'bound h':>9}"
          f"{'ratio':>8}")
    for r in results:
        print(f"{r['workload']:<13}{r['profile']:<15}{r['policy']:<13}"
              f"{r['makespan_s'] / 3600:>11.2f}{r['lower_bound_s'] / 3600:>9.2f}"
              f"{r['ratio']:>8.3f}")
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
