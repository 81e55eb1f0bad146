"""Transcription slots from a hardware snapshot. Pure.

GPU slots per GPU = floor((total − driver-reserved − other reservations) / model VRAM),
at least 1 (`transcribe.gpu_slots` overrides). CPU slots follow the original RAM tiers
(< 16 GB → 1, < 32 GB → 2, else 3) capped by cores; threads per slot = cores // slots.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ytpiped.config import TranscribeConfig
from ytpiped.hardware import Snapshot

GB = 1024**3

#: approximate VRAM (GB) one loaded model needs while transcribing, by compute type
MODEL_VRAM_GB: dict[str, dict[str, float]] = {
    "large-v3": {"float16": 4.5, "int8_float16": 3.0, "int8": 3.0, "float32": 9.0},
    "large-v2": {"float16": 4.5, "int8_float16": 3.0, "int8": 3.0, "float32": 9.0},
    "large-v3-turbo": {"float16": 2.5, "int8_float16": 1.6, "int8": 1.6, "float32": 5.0},
    "distil-large-v3": {"float16": 2.5, "int8_float16": 1.6, "int8": 1.6, "float32": 5.0},
    "medium": {"float16": 2.5, "int8_float16": 1.5, "int8": 1.5, "float32": 5.0},
    "small": {"float16": 1.0, "int8_float16": 0.5, "int8": 0.5, "float32": 2.0},
    "base": {"float16": 0.5, "int8_float16": 0.3, "int8": 0.3, "float32": 1.0},
    "tiny": {"float16": 0.4, "int8_float16": 0.25, "int8": 0.25, "float32": 0.8},
}
DEFAULT_MODEL_VRAM_GB = 4.0  # the original design's default for unknown models


@dataclass(frozen=True)
class Capacity:
    gpu_slots: tuple[int, ...]  # per GPU, by index
    cpu_slots: int
    cpu_threads_per_slot: int
    model_vram_gb: float
    reasons: tuple[str, ...]

    @property
    def total_gpu_slots(self) -> int:
        return sum(self.gpu_slots)


def model_key(model: str) -> str:
    """'large-v3-turbo', 'Systran/faster-whisper-small.en', '/models/small' -> table key."""
    name = Path(model).name.lower().removeprefix("faster-whisper-").removesuffix(".en")
    for key in sorted(MODEL_VRAM_GB, key=len, reverse=True):
        if name == key or name.startswith(key):
            return key
    return name


def model_vram_gb(model: str, compute_type: str, override: float | None) -> tuple[float, str]:
    if override is not None:
        return override, "transcribe.model_vram_gb"
    row = MODEL_VRAM_GB.get(model_key(model))
    if row is None:
        return DEFAULT_MODEL_VRAM_GB, f"unknown model {model!r}: assumed"
    return row.get(compute_type, row["float16"]), f"table for {model_key(model)} {compute_type}"


def cpu_slots_for(ram_bytes: int, cores: int) -> int:
    gb = ram_bytes / GB
    tier = 1 if gb < 16 else 2 if gb < 32 else 3
    return max(1, min(tier, cores))


def compute(snap: Snapshot, cfg: TranscribeConfig) -> Capacity:
    reasons: list[str] = []
    vram, why = model_vram_gb(cfg.model_gpu, cfg.compute_type_gpu, cfg.model_vram_gb)
    slots: list[int] = []
    for g in snap.gpus:
        usable = (g.total_bytes - g.reserved_bytes) / GB - cfg.other_vram_gb
        auto = max(1, math.floor(usable / vram))
        n = cfg.gpu_slots if cfg.gpu_slots is not None else auto
        slots.append(n)
        how = ("transcribe.gpu_slots" if cfg.gpu_slots is not None else
               f"floor(({g.total_bytes / GB:.1f} total − {g.reserved_bytes / GB:.2f} reserved "
               f"[{g.reserved_source}] − {cfg.other_vram_gb:g} other) / {vram:g} GB per model "
               f"[{why}]) = {auto}")
        reasons.append(f"GPU {g.index} ({g.name}): {n} slot{'s' if n != 1 else ''} — {how}")
    if not snap.gpus:
        reasons.append(f"GPU: none ({snap.nvml_error or 'no NVIDIA GPU found'})")
    auto_cpu = cpu_slots_for(snap.ram_total_bytes, snap.cpu_cores)
    cpu = cfg.cpu_slots if cfg.cpu_slots is not None else auto_cpu
    threads = max(1, snap.cpu_cores // cpu) if cpu else 0
    if cfg.cpu_slots is not None:
        reasons.append(f"CPU: {cpu} slots — transcribe.cpu_slots")
    else:
        reasons.append(f"CPU: {cpu} slot{'s' if cpu != 1 else ''} — RAM "
                       f"{snap.ram_total_bytes / GB:.1f} GB tier (<16→1, <32→2, else 3) capped "
                       f"by {snap.cpu_cores} cores")
    if cpu:
        reasons.append(f"CPU threads per slot: {snap.cpu_cores} cores // {cpu} = {threads}")
    return Capacity(gpu_slots=tuple(slots), cpu_slots=cpu, cpu_threads_per_slot=threads,
                    model_vram_gb=vram, reasons=tuple(reasons))


def describe(snap: Snapshot, cap: Capacity) -> str:
    lines = ["Hardware", "========"]
    if snap.gpus:
        for g in snap.gpus:
            lines.append(f"GPU {g.index}: {g.name}  total {g.total_bytes / GB:.1f} GB, used "
                         f"{g.used_bytes / GB:.1f} GB, free {g.free_bytes / GB:.1f} GB, "
                         f"reserved {g.reserved_bytes / GB:.2f} GB ({g.reserved_source})")
        if snap.driver_version:
            lines.append(f"driver {snap.driver_version}")
    else:
        lines.append(f"GPU: {snap.nvml_error or 'no NVIDIA GPU found'}")
    lines.append(f"RAM: {snap.ram_total_bytes / GB:.1f} GB total, "
                 f"{snap.ram_available_bytes / GB:.1f} GB available")
    lines.append(f"CPU: {snap.cpu_cores} cores")
    lines += ["", "Transcription capacity", "======================"]
    lines.append(f"GPU slots: {cap.total_gpu_slots} "
                 f"({', '.join(f'GPU {i}: {n}' for i, n in enumerate(cap.gpu_slots)) or 'no GPU'})")
    lines.append(f"CPU slots: {cap.cpu_slots} × {cap.cpu_threads_per_slot} threads")
    lines.append(f"Total concurrent: {cap.total_gpu_slots + cap.cpu_slots}")
    lines += ["", "Why:"] + [f"  - {r}" for r in cap.reasons]
    return "\n".join(lines)


def capacity_to_json(cap: Capacity) -> dict[str, Any]:
    d = asdict(cap)
    d["total_gpu_slots"] = cap.total_gpu_slots
    return d
