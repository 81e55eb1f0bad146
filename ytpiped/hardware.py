"""Hardware snapshot: NVIDIA GPUs through NVML (nvidia-ml-py), RAM and cores through psutil.

`snapshot()` never raises for a missing GPU: a machine without NVML gets `gpus=()` and
`nvml_error` says why. The NVML module is injectable so tests can hand in a fake.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psutil

MB = 1024 * 1024


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    reserved_bytes: int
    reserved_source: Literal["nvml", "config"]
    uuid: str = ""
    utilization_pct: float | None = None


@dataclass(frozen=True)
class Snapshot:
    gpus: tuple[GPU, ...]
    ram_total_bytes: int
    ram_available_bytes: int
    cpu_cores: int
    nvml_error: str | None = None
    driver_version: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _gpu(nvml: Any, index: int, reserved_vram_mb: int) -> GPU:
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    reserved: int | None = None
    try:  # v2 reports what the driver/OS reserves; v1 does not
        mem = nvml.nvmlDeviceGetMemoryInfo(h, version=nvml.nvmlMemory_v2)
        reserved = int(mem.reserved)
    except (AttributeError, TypeError, nvml.NVMLError):
        mem = nvml.nvmlDeviceGetMemoryInfo(h)
    util: float | None = None
    try:
        util = float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
    except (AttributeError, nvml.NVMLError):
        util = None
    try:
        uuid = _text(nvml.nvmlDeviceGetUUID(h))
    except (AttributeError, nvml.NVMLError):
        uuid = ""
    return GPU(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(h)),
        total_bytes=int(mem.total),
        used_bytes=int(mem.used),
        free_bytes=int(mem.free),
        reserved_bytes=reserved if reserved is not None else reserved_vram_mb * MB,
        reserved_source="nvml" if reserved is not None else "config",
        uuid=uuid,
        utilization_pct=util,
    )


def gpus(reserved_vram_mb: int = 500, nvml: Any = None) -> tuple[tuple[GPU, ...], str | None,
                                                                 str | None]:
    """(gpus, error, driver version) from NVML; error explains an empty tuple."""
    if nvml is None:
        try:
            import pynvml
        except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency
            return (), "no NVIDIA GPU found (nvidia-ml-py is not installed)", None
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return (), f"no NVIDIA GPU found ({_text(exc) or type(exc).__name__})", None
    try:
        count = int(nvml.nvmlDeviceGetCount())
        try:
            driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError:
            driver = None
        found = tuple(_gpu(nvml, i, reserved_vram_mb) for i in range(count))
        return found, (None if found else "no NVIDIA GPU found (NVML sees 0 devices)"), driver
    except nvml.NVMLError as exc:
        return (), f"NVML error: {_text(exc)}", None
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def snapshot(reserved_vram_mb: int = 500, nvml: Any = None) -> Snapshot:
    found, error, driver = gpus(reserved_vram_mb, nvml)
    vm = psutil.virtual_memory()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        psutil.cpu_count() or 1)
    return Snapshot(gpus=found, ram_total_bytes=int(vm.total),
                    ram_available_bytes=int(vm.available), cpu_cores=max(1, cores),
                    nvml_error=error, driver_version=driver)


def snapshot_to_json(s: Snapshot) -> dict[str, Any]:
    return asdict(s)
