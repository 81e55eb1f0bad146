"""Analyze stage: downloaded -> analyzing -> analyzed.

Gives the scheduler exact durations and a chunk plan cut at silences, and the user
loudness figures and an early "no usable audio" verdict (`bad_audio` / `no_audio`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ytpiped import kinds
from ytpiped.abort import in_thread
from ytpiped.audio import chunkplan, torch_backend
from ytpiped.audio.analysis import Analysis, BadAudio, NoAudio, analyze_path, finish
from ytpiped.audio.decode import RATE, decode
from ytpiped.config import Settings
from ytpiped.errors import ConfigError, Permanent
from ytpiped.paths import DataDir
from ytpiped.stages.base import Context, Item, Outcome, StageBase


def choose_backend(settings: Settings) -> str:
    """`analyze.backend`: auto = torch when it is installed and a CUDA GPU is present."""
    want = settings.analyze.backend
    if want == "torch" and not torch_backend.available():
        raise ConfigError("key 'analyze.backend': \"torch\" needs torch: pip install "
                          "'ytpiped[gpu]', or use \"cpu\"")
    if want == "auto":
        return "torch" if torch_backend.cuda_available() else "cpu"
    return want


class AnalyzeStage(StageBase):
    name = "analyze"
    concurrency = 1  # CPU-bound: one file at a time leaves the cores to transcription

    def __init__(self, concurrency: int = 1, settings: Settings | None = None) -> None:
        self.concurrency = concurrency
        self.backend = choose_backend(settings) if settings is not None else "cpu"
        self.batcher: torch_backend.Batcher | None = None
        if self.backend == "torch":
            assert settings is not None
            a = settings.analyze
            meter = torch_backend.TorchLoudness(max_batch_size=a.max_batch_size,
                                                max_batch_samples=a.max_batch_samples)
            self.batcher = torch_backend.Batcher(meter, RATE, a.batch_timeout_s)
            self.concurrency = max(concurrency, a.max_batch_size)  # fill the batches

    async def _analyze(self, path: Path, ctx: Context) -> Analysis:
        a, max_chunk = ctx.settings.analyze, ctx.settings.transcribe.max_chunk_s
        opts: dict[str, Any] = {"max_chunk_s": max_chunk, "threshold_lu": a.silence_threshold_lu,
                                "min_silence_s": a.min_silence_s}
        if self.batcher is None:
            return await in_thread(analyze_path, path, **opts)
        samples = await asyncio.to_thread(decode, path)
        loud = await self.batcher.measure(samples)
        return await asyncio.to_thread(finish, loud, path, backend="torch", **opts)

    async def run(self, item: Item, ctx: Context) -> Outcome:
        if not item.audio_path:
            raise Permanent(f"{item.id}: no audio file recorded by the download stage",
                            kind=kinds.BAD_AUDIO)
        path = DataDir(ctx.data_dir).resolve(item.audio_path)
        assert path is not None
        try:
            result = await self._analyze(path, ctx)
        except BadAudio as exc:
            raise Permanent(str(exc), kind=kinds.BAD_AUDIO) from None
        except NoAudio as exc:
            raise Permanent(str(exc), kind=kinds.NO_AUDIO) from None
        data = result.to_json()
        sponsor = [(float(s["start"]), float(s["end"]))
                   for s in item.info.get("sponsorblock") or []]
        if sponsor:  # SponsorBlock segments are never transcribed (nor mined)
            data["chunks"] = [list(c) for c in chunkplan.exclude(
                [(float(a), float(b)) for a, b in data["chunks"]], sponsor)]
        ctx.log.info("audio_analyzed", duration_s=data["duration_s"],
                     lufs=data["integrated_lufs"], chunks=len(data["chunks"]),
                     sponsor_segments=len(sponsor))
        return Outcome(fields={"duration_s": result.duration_s},
                       info={"analysis": {k: v for k, v in data.items() if k != "chunks"},
                             "chunks": data["chunks"]})
