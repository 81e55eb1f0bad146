"""Loudness measurement speed on the same 10-minute file (16 kHz mono speech + noise).

CPU: ytpiped's numpy backend vs pyloudnorm, as real-time factor per core (audio
seconds per CPU-second, single-threaded). GPU (only when torch sees CUDA): the batched
torch backend vs torchaudio's loudness (if installed) vs pyloudnorm, with peak VRAM.

    python -m benchmarks.loudness
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ytpiped.audio.decode import decode
from ytpiped.audio.loudness import measure

MEDIA = Path(__file__).resolve().parent.parent / "ytpiped" / "testing" / "media"
RATE = 16_000
SECONDS = 600


def test_signal() -> np.ndarray:
    speech = np.concatenate([decode(MEDIA / n) for n in ("long.opus", "solar.webm",
                                                          "coffee.m4a", "ocean.mp3")])
    reps = int(np.ceil(SECONDS * RATE / speech.size))
    x = np.tile(speech, reps)[: SECONDS * RATE].astype(np.float64)
    return x + 0.001 * np.random.default_rng(1).standard_normal(x.size)


def cpu_time(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> int:
    import pyloudnorm

    x = test_signal()
    ours = cpu_time(lambda: measure(x, RATE))
    ref = cpu_time(lambda: pyloudnorm.Meter(RATE).integrated_loudness(x))
    lufs_ours, lufs_ref = measure(x, RATE).integrated_lufs, \
        pyloudnorm.Meter(RATE).integrated_loudness(x)
    result: dict[str, Any] = {
        "audio_s": SECONDS,
        "cpu_backend_rtf_per_core": round(SECONDS / ours),
        "pyloudnorm_rtf_per_core": round(SECONDS / ref),
        "cpu_backend_over_pyloudnorm": round(ref / ours, 2),
        "lufs_difference": round(abs(lufs_ours - lufs_ref), 4),
        "gpu": None,
    }
    print(f"{'backend':<34}{'real time per core':>20}")
    print(f"{'ytpiped cpu (numpy)':<34}{SECONDS / ours:>19.0f}x")
    print(f"{'pyloudnorm':<34}{SECONDS / ref:>19.0f}x")
    torch: Any = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    if torch is not None and torch.cuda.is_available():
        from ytpiped.audio.torch_backend import TorchLoudness

        meter = TorchLoudness(device="cuda", max_batch_size=16)
        batch = [x] * 16
        meter.measure_batch(batch[:1], RATE)  # warm up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        meter.measure_batch(batch, RATE)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        gpu: dict[str, Any] = {"torch_batched_rtf": round(16 * SECONDS / wall),
                               "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 1e6)}
        try:
            import torchaudio.functional as taf  # type: ignore[import-not-found]

            t = torch.as_tensor(x, dtype=torch.float32, device="cuda")[None]
            t0 = time.perf_counter()
            taf.loudness(t, RATE)
            torch.cuda.synchronize()
            gpu["torchaudio_rtf"] = round(SECONDS / (time.perf_counter() - t0))
        except ImportError:
            gpu["torchaudio_rtf"] = None
        result["gpu"] = gpu
        print(f"{'torch batched (GPU, 16 files)':<34}{gpu['torch_batched_rtf']:>19}x  "
              f"peak VRAM {gpu['peak_vram_mb']} MB")
    else:
        print("GPU part skipped: no CUDA device (run on a machine with an NVIDIA GPU)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
