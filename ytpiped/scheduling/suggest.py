"""Concrete tuning suggestions from what the tracker learned and how slots were used.
Pure. Each suggestion says what to change, why, and the estimated effect."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ytpiped.config import TranscribeConfig
from ytpiped.scheduling.capacity import Capacity

GB = 1024**3


@dataclass(frozen=True)
class Usage:
    """Observed since start: busy fractions per device kind, how often a job waited for a
    slot, and how often a free slot waited for a job (an empty buffer)."""

    busy_gpu: float
    busy_cpu: float
    job_waited: float  # share of time with queued chunks and no free slot
    slot_idle_no_work: float  # share of time with a free slot and nothing queued
    speed_gpu: float  # audio s per s per slot, learned
    speed_cpu: float
    avg_cpu_job_s: float
    ram_free_bytes: int
    cores: int


@dataclass(frozen=True)
class Suggestion:
    text: str
    reason: str
    effect: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def suggest(u: Usage, cap: Capacity, cfg: TranscribeConfig) -> list[Suggestion]:
    out: list[Suggestion] = []
    total = cap.total_gpu_slots * u.speed_gpu + cap.cpu_slots * u.speed_cpu
    if total <= 0:
        return out
    if u.slot_idle_no_work > 0.2:
        out.append(Suggestion(
            "download faster: lower download.delay_steady_s / delay_catch_up_s or raise "
            "download.buffer_target",
            f"transcription slots sat idle with nothing queued {u.slot_idle_no_work:.0%} of "
            "the time", f"up to ~{u.slot_idle_no_work:.0%} more transcription throughput"))
    spare_cpu = u.cores - cap.cpu_slots * max(1, cap.cpu_threads_per_slot)
    if u.job_waited > 0.3 and u.busy_cpu > 0.8 and u.ram_free_bytes > 2 * GB and \
            cap.cpu_slots < u.cores:
        gain = u.speed_cpu / (total + u.speed_cpu)
        out.append(Suggestion(
            f"transcribe.cpu_slots {cap.cpu_slots} → {cap.cpu_slots + 1}",
            f"CPU jobs finish in {u.avg_cpu_job_s:.0f} s on average, chunks waited for a slot "
            f"{u.job_waited:.0%} of the time, {u.ram_free_bytes / GB:.0f} GB RAM free"
            + (f", {spare_cpu} cores unused" if spare_cpu > 0 else ""),
            f"saves ~{gain:.0%} of the remaining time"))
    if cap.total_gpu_slots and u.busy_gpu < 0.5 and u.job_waited > 0.3:
        out.append(Suggestion(
            "check the GPU: it is busy only part of the time while chunks wait",
            f"GPU busy {u.busy_gpu:.0%}, chunks waited {u.job_waited:.0%} of the time",
            "more GPU slots (transcribe.gpu_slots) or a smaller model_vram_gb estimate"))
    if cfg.policy == "benefit" and cap.cpu_slots and u.speed_cpu > 0 and \
            cfg.max_chunk_s / u.speed_cpu > cfg.max_cpu_time_s:
        out.append(Suggestion(
            "transcribe.policy = \"ect\"",
            f"a {cfg.max_chunk_s:.0f} s chunk takes ~{cfg.max_chunk_s / u.speed_cpu:.0f} s on "
            f"the CPU, over max_cpu_time_s {cfg.max_cpu_time_s:.0f}: the benefit policy keeps "
            "CPU slots idle", "benchmarks/scheduler_sim: ect within 1 % of the lower bound"))
    return out
