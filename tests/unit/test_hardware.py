from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from ytpiped import config
from ytpiped.hardware import GPU, Snapshot, snapshot
from ytpiped.scheduling.capacity import compute, cpu_slots_for, describe, model_vram_gb
from ytpiped.testing.gpu_status import climbed_gpu_status

GB = 1024**3


class FakeNVML:
    """Just enough of pynvml: devices as (name, total, used, reserved or None)."""

    class NVMLError(Exception):
        pass

    class NVMLError_LibraryNotFound(NVMLError):
        pass

    nvmlMemory_v2 = 2

    def __init__(self, devices: list[tuple[str, int, int, int | None]], missing: bool = False
                 ) -> None:
        self.devices = devices
        self.missing = missing
        self.shutdown = 0

    def nvmlInit(self) -> None:
        if self.missing:
            raise self.NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdown += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.1"

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return self.devices[h][0].encode()

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=37)

    def nvmlDeviceGetMemoryInfo(self, h: int, version: int | None = None) -> Any:
        _, total, used, reserved = self.devices[h]
        if version is not None and reserved is None:
            raise self.NVMLError("Not Supported")
        mem = SimpleNamespace(total=total, used=used, free=total - used)
        if version is not None:
            mem.reserved = reserved
        return mem


def snap_with(gpus: tuple[GPU, ...], ram_gb: float = 64, cores: int = 16) -> Snapshot:
    return Snapshot(gpus=gpus, ram_total_bytes=int(ram_gb * GB),
                    ram_available_bytes=int(ram_gb * GB), cpu_cores=cores)


def test_nvml_snapshot_reads_reserved_from_v2() -> None:
    nvml = FakeNVML([("RTX 4090", 24 * GB, 2 * GB, 300 * 1024**2),
                     ("RTX 3060", 12 * GB, 0, None)])
    s = snapshot(500, nvml=nvml)
    assert s.nvml_error is None and s.driver_version == "580.1" and nvml.shutdown == 1
    a, b = s.gpus
    assert (a.name, a.total_bytes, a.free_bytes, a.reserved_bytes, a.reserved_source) == \
        ("RTX 4090", 24 * GB, 22 * GB, 300 * 1024**2, "nvml")
    assert (b.reserved_bytes, b.reserved_source) == (500 * 1024**2, "config")
    assert a.utilization_pct == 37.0


def test_missing_nvml_is_a_clear_no_gpu() -> None:
    s = snapshot(500, nvml=FakeNVML([], missing=True))
    assert s.gpus == () and s.nvml_error is not None
    assert s.nvml_error.startswith("no NVIDIA GPU found")
    assert "no NVIDIA GPU found" in describe(s, compute(s, config.TranscribeConfig()))


def test_real_machine_without_gpu() -> None:
    s = snapshot()
    assert s.cpu_cores >= 1 and s.ram_total_bytes > 0
    if not s.gpus:
        assert s.nvml_error and "no NVIDIA GPU found" in s.nvml_error


def gpu(i: int, total_gb: float, reserved_gb: float = 0.5) -> GPU:
    return GPU(i, f"gpu{i}", int(total_gb * GB), 0, int(total_gb * GB), int(reserved_gb * GB),
               "nvml")


# one slot = weights + 0.4 GB CUDA context + batch_size (8) x the activations of a window
@pytest.mark.parametrize("total,model,ctype,expected", [
    (24, "large-v3-turbo", "float16", 6),  # floor(23.5 / (2.5 + 0.4 + 8 x 0.12))
    (24, "large-v3", "float16", 3),  # floor(23.5 / (4.5 + 0.4 + 8 x 0.25))
    (24, "large-v3", "int8_float16", 4),  # floor(23.5 / (3.0 + 0.4 + 8 x 0.25))
    (12, "small", "int8", 8),  # floor(11.5 / (0.5 + 0.4 + 8 x 0.06))
    (4, "large-v3", "float16", 1),  # less than one slot fits: still 1
    (80, "/models/faster-whisper-large-v3-turbo", "float16", 20),
])
def test_gpu_slots_from_vram(total: float, model: str, ctype: str, expected: int) -> None:
    cfg = config.TranscribeConfig(model_gpu=model, compute_type_gpu=ctype)
    assert compute(snap_with((gpu(0, total),)), cfg).gpu_slots == (expected,)


def test_slot_vram_counts_context_and_batch() -> None:
    cfg = config.TranscribeConfig(model_gpu="large-v3-turbo", compute_type_gpu="float16")
    assert compute(snap_with((gpu(0, 24),)), replace(cfg, batch_size=1)).gpu_slots == (7,)
    # conditioning on the previous text runs unbatched: no batch activations
    unbatched = replace(cfg, condition_on_previous_text=True)
    assert compute(snap_with((gpu(0, 24),)), unbatched).gpu_slots == (7,)
    assert compute(snap_with((gpu(0, 24),)), replace(cfg, cuda_context_gb=0.0,
                                                     batch_size=1)).gpu_slots == (8,)


def test_other_reservations_overrides_and_multi_gpu() -> None:
    s = snap_with((gpu(0, 24), gpu(1, 12)))
    base = config.TranscribeConfig(model_gpu="large-v3-turbo", compute_type_gpu="float16")
    assert compute(s, base).gpu_slots == (6, 2)
    assert compute(s, replace(base, other_vram_gb=8.0)).gpu_slots == (4, 1)  # Ollama beside
    assert compute(s, replace(base, model_vram_gb=5.0)).gpu_slots == (4, 2)  # the whole slot
    assert compute(s, replace(base, gpu_slots=2)).gpu_slots == (2, 2)


@pytest.mark.parametrize("ram,cores,slots", [(8, 16, 1), (16, 16, 2), (31, 16, 2), (32, 16, 3),
                                             (128, 2, 2), (64, 1, 1)])
def test_cpu_slot_tiers_capped_by_cores(ram: float, cores: int, slots: int) -> None:
    assert cpu_slots_for(int(ram * GB), cores) == slots
    cap = compute(snap_with((), ram, cores), config.TranscribeConfig())
    assert cap.cpu_slots == slots and cap.cpu_threads_per_slot == cores // slots


def test_cpu_override_and_reasons() -> None:
    cap = compute(snap_with((gpu(0, 24),), 64, 16), config.TranscribeConfig(cpu_slots=4))
    assert (cap.cpu_slots, cap.cpu_threads_per_slot) == (4, 4)
    assert any("transcribe.cpu_slots" in r for r in cap.reasons)
    assert any("floor((24.0 total" in r for r in cap.reasons)


def test_unknown_model_uses_default_and_says_so() -> None:
    gb, why = model_vram_gb("my-custom-model", "float16", None)
    assert gb == 4.0 and "unknown model" in why
    assert model_vram_gb("small", "int8", 1.25) == (1.25, "transcribe.model_vram_gb")


def test_gpu_slots_view_names_the_ceiling_formula_and_the_daemons_active_count() -> None:
    from ytpiped.scheduling.capacity import describe_gpu_slots, gpu_slots_view

    snap = snapshot(500, nvml=FakeNVML([("RTX 4090", 24 * GB, 2 * GB, GB // 2)]))
    cfg = config.TranscribeConfig(model_gpu="large-v3-turbo", compute_type_gpu="float16")
    cap = compute(snap, cfg)
    idle = gpu_slots_view(snap, cfg, cap, None)
    (v,) = idle
    assert (v["device"], v["ceiling"], v["ceiling_source"], v["active"]) == \
        ("cuda:0", 6, "vram", None)
    assert v["vram"] == {"total_gb": 24.0, "reserved_gb": 0.5, "reserved_source": "nvml",
                         "other_gb": 0.0, "usable_gb": 23.5}
    p = v["per_slot"]
    assert (p["model_gb"], p["cuda_context_gb"], p["batch_size"], p["batch_item_gb"]) == \
        (2.5, 0.4, 8, 0.12)
    assert p["per_slot_gb"] == round(2.5 + 0.4 + 8 * 0.12, 3)
    text = "\n".join(describe_gpu_slots(idle))
    assert "GPU 0 (RTX 4090): ceiling 6 slots" in text
    assert "ceiling = floor((24.0 GB total − 0.50 reserved [nvml] − 0 other) / 3.86 GB " \
           "per slot)" in text
    assert "per slot = 2.5 GB model large-v3-turbo [table for large-v3-turbo float16] + 0.4 " \
           "CUDA context + 8 × 0.12 batch activations" in text
    assert "active: no daemon running (it starts with 1" in text

    live = gpu_slots_view(snap, cfg, cap, climbed_gpu_status()["gpu"])
    assert (live[0]["active"], live[0]["ceiling_running"]) == (3, 6)
    assert live[0]["why"].startswith("3 of 6: a slot more gave +1% throughput")
    text = "\n".join(describe_gpu_slots(live))
    assert "active: 3 of 6 — 3 of 6: a slot more gave +1% throughput (< 5%), so it was " \
           "dropped" in text
    assert "measured audio s/s by active slots: 1: 50, 2: 80, 3: 90, 4: 91" in text
    waiting = describe_gpu_slots(gpu_slots_view(snap, cfg, cap, {}))
    assert any("has not published its GPU slots yet" in line for line in waiting)


def test_hw_json_reads_the_running_daemons_slots_from_the_store(
        settings: config.Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`ytpiped hw --json` on a fake 24 GB GPU (a fake NVML module) with a daemon that holds
    the data dir and published its slots in the store (as `status` reads them)."""
    import json
    import sys

    from ytpiped import cli
    from ytpiped.store import SqliteDB, db_path

    monkeypatch.setitem(sys.modules, "pynvml",
                        FakeNVML([("RTX 4090", 24 * GB, 2 * GB, GB // 2)]))
    store = SqliteDB(db_path(settings.data_path), now=0)
    store.set_state("stage:transcribe", climbed_gpu_status(), 1.0)
    store.close()
    flags = ["--data-dir", str(settings.data_path)]
    assert cli.main([*flags, "hw", "--json"]) == cli.EXIT_OK
    (v,) = json.loads(capsys.readouterr().out)["gpu_slots"]
    assert (v["ceiling"], v["active"], v["daemon"]) == (6, None, False)  # no daemon runs
    monkeypatch.setattr(cli, "live_status", lambda s: (4321, None))  # one holds the dir
    assert cli.main([*flags, "hw", "--json"]) == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"hardware", "capacity", "gpu_slots"}
    (v,) = out["gpu_slots"]
    assert (v["ceiling"], v["active"], v["daemon"]) == (6, 3, True)
    assert "so it was dropped" in v["why"]
    assert cli.main([*flags, "hw"]) == cli.EXIT_OK
    assert "active: 3 of 6 — 3 of 6: a slot more gave +1%" in capsys.readouterr().out
