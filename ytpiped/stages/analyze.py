"""Analyze stage: downloaded -> analyzing -> analyzed.

Gives the scheduler exact durations and a chunk plan cut at silences, and the user
loudness figures and an early "no usable audio" verdict (`bad_audio` / `no_audio`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ytpiped.audio.analysis import BadAudio, NoAudio, analyze_path
from ytpiped.errors import Permanent
from ytpiped.stages.base import Context, Item, Outcome


class AnalyzeStage:
    name = "analyze"
    concurrency = 1  # CPU-bound: one file at a time leaves the cores to transcription

    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = concurrency

    async def run(self, item: Item, ctx: Context) -> Outcome:
        if not item.audio_path:
            raise Permanent(f"{item.id}: no audio file recorded by the download stage",
                            kind="bad_audio")
        path = Path(item.audio_path)
        if not path.is_absolute():
            path = ctx.data_dir / path
        a = ctx.settings.analyze
        try:
            result = await asyncio.to_thread(
                analyze_path, path, max_chunk_s=ctx.settings.transcribe.max_chunk_s,
                threshold_lu=a.silence_threshold_lu, min_silence_s=a.min_silence_s)
        except BadAudio as exc:
            raise Permanent(str(exc), kind="bad_audio") from None
        except NoAudio as exc:
            raise Permanent(str(exc), kind="no_audio") from None
        data = result.to_json()
        ctx.log.info("audio_analyzed", duration_s=data["duration_s"],
                     lufs=data["integrated_lufs"], chunks=len(data["chunks"]))
        return Outcome(fields={"duration_s": result.duration_s},
                       info={"analysis": {k: v for k, v in data.items() if k != "chunks"},
                             "chunks": data["chunks"]})
