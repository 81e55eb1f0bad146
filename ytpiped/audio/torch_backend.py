"""Optional loudness backend on torch (`pip install 'ytpiped[gpu]'`), fast on a GPU.

An IIR filter runs sample by sample, which is why torchaudio's loudness is slower on a GPU
than on one CPU core. Here K-weighting is an FFT convolution with the filter's impulse
response, truncated where its energy has decayed below 1e-10 of the total, and files are
measured in batches: one padded FFT for the whole batch, then 100 ms segment energies;
the gating arithmetic is shared with the CPU backend, so results agree within 0.1 LU.

Batching follows the original batching rules: only compatible items (same sample rate)
share a batch, at most `max_batch_size` items and `max_batch_samples` samples; if a batch
fails (out of memory, say), its items are measured one by one and none is lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ytpiped.audio.loudness import (
    BLOCK_SEGMENTS,
    SEGMENT_S,
    SHORT_TERM_SEGMENTS,
    Loudness,
    energy_to_lufs,
    gated_mean,
    impulse_response,
    loudness_range,
    windows,
)

TAIL_ENERGY = 1e-10  # a shorter impulse response than the CPU meter's: less to convolve


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def cuda_available() -> bool:
    if not available():
        return False
    import torch

    return bool(torch.cuda.is_available())


def plan_batches(lengths: Sequence[int], rates: Sequence[int], max_batch_size: int,
                 max_batch_samples: int) -> list[list[int]]:
    """Group item indexes: same rate, at most max_batch_size items, at most
    max_batch_samples padded samples (an item larger than the cap goes alone). Pure."""
    order = sorted(range(len(lengths)), key=lambda i: (rates[i], -lengths[i]))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = max([lengths[j] for j in cur] + [lengths[i]])
        fits = (cur and rates[cur[0]] == rates[i] and len(cur) < max_batch_size
                and longest * (len(cur) + 1) <= max_batch_samples)
        if cur and not fits:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class TorchLoudness:
    def __init__(self, device: str | None = None, max_batch_size: int = 16,
                 max_batch_samples: int = 16_000 * 3600 * 4) -> None:
        import torch

        self.torch: Any = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_batch_size = max_batch_size
        self.max_batch_samples = max_batch_samples
        self.fallbacks = 0

    def _segment_energy(self, batch: Sequence[npt.NDArray[Any]], rate: int
                        ) -> list[npt.NDArray[np.float64]]:
        torch = self.torch
        h = impulse_response(rate, TAIL_ENERGY)
        longest = max(x.shape[0] for x in batch)
        n = 1 << math.ceil(math.log2(longest + h.size))
        dtype = torch.float64 if self.device == "cpu" else torch.float32
        x = torch.zeros((len(batch), n), dtype=dtype, device=self.device)
        for i, item in enumerate(batch):
            x[i, : item.shape[0]] = torch.as_tensor(item, dtype=dtype, device=self.device)
        hf = torch.fft.rfft(torch.as_tensor(h, dtype=dtype, device=self.device), n=n)
        y = torch.fft.irfft(torch.fft.rfft(x, n=n) * hf, n=n)
        seg = round(rate * SEGMENT_S)
        out = []
        for i, item in enumerate(batch):
            whole = (item.shape[0] // seg) * seg
            e = (y[i, :whole].reshape(-1, seg) ** 2).sum(dim=1) / seg
            out.append(e.cpu().numpy())
        return out

    def measure_batch(self, items: Sequence[npt.ArrayLike], rate: int) -> list[Loudness]:
        """Mono signals at one rate -> Loudness each (same as loudness.measure)."""
        arrays = [np.asarray(x, dtype=np.float64).reshape(-1) for x in items]
        results: list[Loudness | None] = [None] * len(arrays)
        plan = plan_batches([a.size for a in arrays], [rate] * len(arrays),
                            self.max_batch_size, self.max_batch_samples)
        for group in plan:
            try:
                energies = self._segment_energy([arrays[i] for i in group], rate)
            except Exception:  # e.g. CUDA out of memory: measure the items one by one
                self.fallbacks += 1
                energies = [self._segment_energy([arrays[i]], rate)[0] for i in group]
            for i, e in zip(group, energies, strict=True):
                results[i] = _loudness(e, arrays[i].size / rate)
        return [r for r in results if r is not None]


class Batcher:
    """Collects measurement requests into batches (up to max_batch_size, or whatever came
    within batch_timeout_s) and runs each batch in a thread."""

    def __init__(self, meter: TorchLoudness, rate: int, timeout_s: float) -> None:
        import asyncio

        self.asyncio = asyncio
        self.meter, self.rate, self.timeout_s = meter, rate, timeout_s
        self.pending: list[tuple[npt.NDArray[Any], Any]] = []
        self.flush_task: Any = None
        self.batches = 0

    async def measure(self, x: npt.NDArray[Any]) -> Loudness:
        fut = self.asyncio.get_running_loop().create_future()
        self.pending.append((x, fut))
        if len(self.pending) >= self.meter.max_batch_size:
            self._flush_now()
        elif self.flush_task is None:
            self.flush_task = self.asyncio.ensure_future(self._flush_later())
        result: Loudness = await fut
        return result

    async def _flush_later(self) -> None:
        await self.asyncio.sleep(self.timeout_s)
        self.flush_task = None
        self._flush_now()

    def _flush_now(self) -> None:
        if self.flush_task is not None:
            self.flush_task.cancel()
            self.flush_task = None
        batch, self.pending = self.pending, []
        if batch:
            self.batches += 1
            self.asyncio.ensure_future(self._run(batch))

    async def _run(self, batch: list[tuple[npt.NDArray[Any], Any]]) -> None:
        try:
            results = await self.asyncio.to_thread(self.meter.measure_batch,
                                                   [x for x, _ in batch], self.rate)
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), r in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(r)


def _loudness(seg: npt.NDArray[np.float64], duration_s: float) -> Loudness:
    blocks = windows(seg, BLOCK_SEGMENTS)
    short = windows(seg, SHORT_TERM_SEGMENTS)
    return Loudness(integrated_lufs=gated_mean(blocks), loudness_range_lu=loudness_range(short),
                    short_term_lufs=energy_to_lufs(short), segment_lufs=energy_to_lufs(seg),
                    duration_s=duration_s)
