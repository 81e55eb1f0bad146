"""The torch loudness backend: same results as the CPU backend within 0.1 LU, batching
rules, and the one-by-one fallback. Runs on the CPU build of torch; skipped without torch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from ytpiped.audio.decode import decode
from ytpiped.audio.loudness import measure

torch = pytest.importorskip("torch")

from ytpiped.audio.torch_backend import Batcher, TorchLoudness, impulse_response, plan_batches  # noqa: E402

RNG = np.random.default_rng(7)


def test_impulse_response_is_truncated_but_complete() -> None:
    h = impulse_response(16000)
    assert 100 < h.size < 16000
    assert np.sum(h[-10:] ** 2) < 1e-9 * np.sum(h ** 2)


def test_matches_cpu_backend(media: Path) -> None:
    items = [decode(media / "long.opus"), decode(media / "coffee.m4a"),
             0.05 * RNG.standard_normal(16000 * 20),
             np.concatenate([np.zeros(16000 * 5), 0.2 * RNG.standard_normal(16000 * 5)])]
    got = TorchLoudness(device="cpu", max_batch_size=3).measure_batch(items, 16000)
    for x, r in zip(items, got, strict=True):
        c = measure(np.asarray(x, dtype=np.float64), 16000)
        assert r.integrated_lufs == pytest.approx(c.integrated_lufs, abs=0.1)
        assert r.loudness_range_lu == pytest.approx(c.loudness_range_lu, abs=0.1)
        assert r.segment_lufs.shape == c.segment_lufs.shape


def test_batch_plan_rules() -> None:
    plan = plan_batches([100, 90, 80, 70, 60], [16000] * 5, max_batch_size=2,
                        max_batch_samples=10_000)
    assert plan == [[0, 1], [2, 3], [4]]
    assert plan_batches([100, 100], [16000, 48000], 8, 10_000) == [[0], [1]]  # rates differ
    assert plan_batches([600, 500, 400], [16000] * 3, 8, 999) == [[0], [1], [2]]  # memory cap
    assert sorted(i for b in plan_batches([5] * 7, [1] * 7, 3, 99) for i in b) == list(range(7))


def test_failed_batch_falls_back_one_by_one() -> None:
    meter = TorchLoudness(device="cpu", max_batch_size=4)
    real = meter._segment_energy
    calls: list[int] = []

    def flaky(batch, rate):  # type: ignore[no-untyped-def]
        calls.append(len(batch))
        if len(batch) > 1:
            raise RuntimeError("CUDA out of memory")
        return real(batch, rate)

    meter._segment_energy = flaky  # type: ignore[method-assign]
    items = [0.1 * RNG.standard_normal(16000 * 3) for _ in range(3)]
    out = meter.measure_batch(items, 16000)
    assert len(out) == 3 and meter.fallbacks == 1 and calls == [3, 1, 1, 1]
    assert all(np.isfinite(r.integrated_lufs) for r in out)


async def test_batcher_groups_concurrent_requests() -> None:
    meter = TorchLoudness(device="cpu", max_batch_size=3)
    b = Batcher(meter, 16000, timeout_s=0.05)
    xs = [0.1 * RNG.standard_normal(16000 * 2) for _ in range(4)]
    results = await asyncio.gather(*(b.measure(x) for x in xs))
    assert len(results) == 4 and b.batches == 2  # 3 at once, then 1 after the timeout


@pytest.mark.gpu
def test_cuda_backend_matches_cpu(media: Path) -> None:
    x = decode(media / "long.opus")
    (r,) = TorchLoudness(device="cuda").measure_batch([x], 16000)
    assert r.integrated_lufs == pytest.approx(measure(x, 16000).integrated_lufs, abs=0.1)


async def test_stage_with_torch_backend(media: Path, tmp_path: Path) -> None:
    from ytpiped import config
    from ytpiped.stages.analyze import AnalyzeStage
    from ytpiped.stages.base import Item
    from ytpiped.testing.context import FakeContext

    settings = config.load(flags={"data_dir": str(tmp_path), "analyze.backend": "torch",
                                  "transcribe.max_chunk_s": 30, "analyze.batch_timeout_s": 0.01})
    stage = AnalyzeStage(settings=settings)
    assert stage.backend == "torch" and stage.concurrency == settings.analyze.max_batch_size
    item = Item(id="torchvid001", url="u", kind="video", state="analyzing", attempts=0,
                audio_path=str(media / "long.opus"))
    out = await stage.run(item, FakeContext(settings))
    assert len(out.info["chunks"]) == 3
    cpu = await AnalyzeStage().run(item, FakeContext(settings))
    assert out.info["analysis"]["integrated_lufs"] == pytest.approx(
        cpu.info["analysis"]["integrated_lufs"], abs=0.1)
