"""Transcription slots from a hardware snapshot. Pure.

The GPU slot *ceiling* per GPU = floor((total − driver-reserved − other reservations) /
per-slot VRAM), at least 1 (`transcribe.gpu_slots` overrides), where one slot needs the
model's weights, its process's CUDA context and the activations of a batch of
`batch_size` windows. How many of them are active follows measured throughput
(`scheduling.gpu_slots`). CPU slots follow the original RAM tiers (< 16 GB → 1,
< 32 GB → 2, else 3) capped by cores; threads per slot = cores // slots.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ytpiped.config import TranscribeConfig
from ytpiped.hardware import Snapshot
from ytpiped.scheduling import gpu_slots

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
#: activations of one 30-s window in a batch (encoder output, decoder cache for the beam), GB
BATCH_ITEM_GB: dict[str, float] = {
    "large-v3": 0.25, "large-v2": 0.25, "large-v3-turbo": 0.12, "distil-large-v3": 0.12,
    "medium": 0.15, "small": 0.06, "base": 0.03, "tiny": 0.02}
DEFAULT_BATCH_ITEM_GB = 0.25


@dataclass(frozen=True)
class Capacity:
    gpu_slots: tuple[int, ...]  # per GPU, by index
    cpu_slots: int
    cpu_threads_per_slot: int
    model_vram_gb: float  # per GPU slot: weights + CUDA context + batch activations
    reasons: tuple[str, ...]
    adaptive: bool = False  # active GPU slots follow throughput (up to the ceiling)

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


def slot_parts(cfg: TranscribeConfig) -> dict[str, Any]:
    """What one GPU slot's VRAM is made of (GB): the model's weights (and where that figure
    comes from), the process's CUDA context, `batch_size` windows of activations."""
    weights, why = model_vram_gb(cfg.model_gpu, cfg.compute_type_gpu, cfg.model_vram_gb)
    if cfg.model_vram_gb is not None:  # the user's figure is the whole slot
        return {"model": cfg.model_gpu, "model_gb": weights, "model_source": why,
                "cuda_context_gb": 0.0, "batch_size": 0, "batch_item_gb": 0.0,
                "per_slot_gb": weights}
    item = BATCH_ITEM_GB.get(model_key(cfg.model_gpu), DEFAULT_BATCH_ITEM_GB)
    batch = 1 if cfg.condition_on_previous_text else cfg.batch_size
    return {"model": cfg.model_gpu, "model_gb": weights, "model_source": why,
            "cuda_context_gb": cfg.cuda_context_gb, "batch_size": batch,
            "batch_item_gb": item,
            "per_slot_gb": gpu_slots.vram_per_slot_gb(weights, cfg.cuda_context_gb, batch,
                                                      item)}


def slot_vram_gb(cfg: TranscribeConfig) -> tuple[float, str]:
    """(GB one GPU slot needs, how that was worked out)."""
    p = slot_parts(cfg)
    if cfg.model_vram_gb is not None:
        return p["per_slot_gb"], p["model_source"]
    return p["per_slot_gb"], (f"{p['model_gb']:g} model [{p['model_source']}] + "
                              f"{p['cuda_context_gb']:g} CUDA context + {p['batch_size']} × "
                              f"{p['batch_item_gb']:g} batch activations")


def compute(snap: Snapshot, cfg: TranscribeConfig) -> Capacity:
    reasons: list[str] = []
    vram, why = slot_vram_gb(cfg)
    slots: list[int] = []
    for g in snap.gpus:
        usable = (g.total_bytes - g.reserved_bytes) / GB - cfg.other_vram_gb
        auto = max(1, math.floor(usable / vram))
        n = cfg.gpu_slots if cfg.gpu_slots is not None else auto
        slots.append(n)
        how = ("transcribe.gpu_slots" if cfg.gpu_slots is not None else
               f"floor(({g.total_bytes / GB:.1f} total − {g.reserved_bytes / GB:.2f} reserved "
               f"[{g.reserved_source}] − {cfg.other_vram_gb:g} other) / {vram:.2f} GB per slot "
               f"[{why}]) = {auto}")
        adapt = (", active slots follow measured throughput (1 up to the ceiling)"
                 if cfg.gpu_slots_adaptive and cfg.gpu_slots is None and n > 1 else "")
        reasons.append(f"GPU {g.index} ({g.name}): ceiling {n} slot{'s' if n != 1 else ''} — "
                       f"{how}{adapt}")
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
                    model_vram_gb=vram, reasons=tuple(reasons),
                    adaptive=cfg.gpu_slots_adaptive and cfg.gpu_slots is None)


def describe(snap: Snapshot, cap: Capacity, view: list[dict[str, Any]] | None = None) -> str:
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
    lines.append(f"GPU slots: ceiling {cap.total_gpu_slots} "
                 f"({', '.join(f'GPU {i}: {n}' for i, n in enumerate(cap.gpu_slots)) or 'no GPU'})"
                 + ("; active slots start at 1 and follow measured throughput"
                    if cap.adaptive and cap.total_gpu_slots > 1 else ""))
    lines.append(f"CPU slots: {cap.cpu_slots} × {cap.cpu_threads_per_slot} threads")
    lines.append(f"Total concurrent: {cap.total_gpu_slots + cap.cpu_slots}")
    lines += ["", "Why:"] + [f"  - {r}" for r in cap.reasons]
    if view:
        lines += ["", "GPU slots", "=========", *describe_gpu_slots(view)]
    return "\n".join(lines)


def gpu_slots_view(snap: Snapshot, cfg: TranscribeConfig, cap: Capacity,
                   live: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per GPU: the slot ceiling and how it was computed, and, from a running daemon's
    transcribe status (`live`: its `gpu` entry, device -> active/ceiling/why), how many
    slots are active and why. `live` None: no daemon runs."""
    parts = slot_parts(cfg)
    out = []
    for g, ceiling in zip(snap.gpus, cap.gpu_slots, strict=True):
        usable = (g.total_bytes - g.reserved_bytes) / GB - cfg.other_vram_gb
        device = f"cuda:{g.index}"
        climb = live.get(device) if live is not None else None
        entry: dict[str, Any] = {
            "index": g.index, "name": g.name, "device": device, "ceiling": ceiling,
            "ceiling_source": "transcribe.gpu_slots" if cfg.gpu_slots is not None else "vram",
            "vram": {"total_gb": round(g.total_bytes / GB, 2),
                     "reserved_gb": round(g.reserved_bytes / GB, 2),
                     "reserved_source": g.reserved_source, "other_gb": cfg.other_vram_gb,
                     "usable_gb": round(usable, 2)},
            "per_slot": {k: round(v, 3) if isinstance(v, float) else v
                         for k, v in parts.items()},
            "adaptive": cap.adaptive and ceiling > 1,
            "daemon": live is not None,
            "active": None, "why": None, "audio_s_per_s": None}
        if isinstance(climb, dict):
            entry.update(active=climb.get("active"), why=climb.get("why"),
                         audio_s_per_s=climb.get("audio_s_per_s"))
            if isinstance(climb.get("ceiling"), int):
                entry["ceiling_running"] = climb["ceiling"]  # lower after an out-of-memory
        out.append(entry)
    return out


def describe_gpu_slots(view: list[dict[str, Any]]) -> list[str]:
    """The lines `hw` prints per GPU: ceiling and its formula, active slots and why."""
    lines: list[str] = []
    for v in view:
        p, m = v["per_slot"], v["vram"]
        lines.append(f"GPU {v['index']} ({v['name']}): ceiling {v['ceiling']} slot"
                     f"{'s' if v['ceiling'] != 1 else ''}")
        if v["ceiling_source"] == "vram":
            lines.append(f"  ceiling = floor(({m['total_gb']:.1f} GB total − "
                         f"{m['reserved_gb']:.2f} reserved [{m['reserved_source']}] − "
                         f"{m['other_gb']:g} other) / {p['per_slot_gb']:.2f} GB per slot)")
        else:
            lines.append("  ceiling set by transcribe.gpu_slots")
        if p["batch_size"]:
            lines.append(f"  per slot = {p['model_gb']:g} GB model {p['model']} "
                         f"[{p['model_source']}] + {p['cuda_context_gb']:g} CUDA context + "
                         f"{p['batch_size']} × {p['batch_item_gb']:g} batch activations")
        else:
            lines.append(f"  per slot = {p['per_slot_gb']:g} GB [{p['model_source']}]")
        if not v["daemon"]:
            lines.append("  active: no daemon running" + (
                " (it starts with 1 and adds one while throughput rises by >= 5 %)"
                if v["adaptive"] else " (all of the ceiling)"))
        elif v["active"] is None:
            lines.append("  active: the daemon has not published its GPU slots yet")
        else:
            tput = v.get("audio_s_per_s") or {}
            measured = ", ".join(f"{k}: {x:g}" for k, x in sorted(
                tput.items(), key=lambda kv: int(kv[0])))
            lines.append(f"  active: {v['active']} of {v.get('ceiling_running', v['ceiling'])}"
                         f" — {v['why']}")
            if measured:
                lines.append(f"  measured audio s/s by active slots: {measured}")
    return lines


def capacity_to_json(cap: Capacity) -> dict[str, Any]:
    d = asdict(cap)
    d["total_gpu_slots"] = cap.total_gpu_slots
    return d
