"""Transcribe stage: analyzed -> transcribing -> transcribed.

Every video is cut into chunks (the analysis plan, else fixed points at `max_chunk_s`);
chunks of all videos in flight share one `Dispatcher` over the slots (one Engine each,
GPU and CPU). A chunk goes to a free GPU slot, or to a free CPU slot only when it is
predicted to finish there before a GPU slot could finish it (earliest completion). Each
finished chunk is persisted at once, so a restart resumes at the next chunk; the video
is merged, checked for repetition loops and written as json/txt/srt/vtt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from ytpiped import kinds, metrics
from ytpiped import transcription as tx
from ytpiped.config import Settings
from ytpiped.engines.base import BadAudioError, ChunkJob, Engine, EngineError, ModelUnavailable
from ytpiped.engines.dispatcher import Dispatcher
from ytpiped.errors import Permanent, Retryable
from ytpiped.paths import DataDir
from ytpiped.scheduling.capacity import Capacity
from ytpiped.scheduling.policy import Rules
from ytpiped.scheduling.suggest import suggest
from ytpiped.scheduling.tracker import PerfSample
from ytpiped.stages.base import Context, Item, Outcome, StageBase


def fixed_chunks(duration_s: float, max_chunk_s: float) -> list[tuple[float, float]]:
    n = max(1, int(-(-duration_s // max_chunk_s)))
    step = duration_s / n
    return [(round(i * step, 3), round(duration_s if i == n - 1 else (i + 1) * step, 3))
            for i in range(n)]


def decisive(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error that decides a video whose chunks failed: an error that is not the
    engine's (a lost lease, a full disk) passes on as it is; then bad audio (permanent)
    over a missing model over other engine errors (retried)."""
    errors = _leaves(group)

    def first(kind: type[BaseException]) -> BaseException | None:
        return next((e for e in errors if isinstance(e, kind)), None)

    if (other := next((e for e in errors if not isinstance(e, EngineError)), None)):
        return other
    if (bad := first(BadAudioError)) is not None:
        return Permanent(str(bad), kind=kinds.BAD_AUDIO)
    if (missing := first(ModelUnavailable)) is not None:
        return Retryable(str(missing), kind=kinds.MODEL_UNAVAILABLE, defer=600.0)
    return Retryable(str(errors[0]), kind=type(errors[0]).__name__)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


class TranscribeStage(StageBase):
    name = "transcribe"

    def __init__(self, settings: Settings, engines: Sequence[Engine],
                 out_dir: Path | None = None) -> None:
        cfg = settings.transcribe
        self.settings = settings
        self.out_dir = out_dir  # default: DATA/transcripts
        self.new_samples: list[PerfSample] = []
        self.samples_loaded = False
        self.dispatcher = Dispatcher(
            list(engines), policy=cfg.policy,
            rules=Rules(cfg.max_cpu_time_s, cfg.stop_cpu_at_progress),
            timeout_factor=cfg.job_timeout_factor,
            max_attempts=cfg.chunk_attempts,
            compute_types={"gpu": cfg.compute_type_gpu, "cpu": cfg.compute_type_cpu},
            batch_sizes={"gpu": cfg.batch_size, "cpu": 1}, on_sample=self.new_samples.append)
        self.concurrency = max(1, len(engines)) + 1

    async def start(self, ctx: Context | None = None) -> None:
        await asyncio.gather(*(e.start() for e in self.dispatcher.engines))

    async def close(self) -> None:
        await asyncio.gather(*(e.close() for e in self.dispatcher.engines),
                             return_exceptions=True)

    async def _sync_samples(self, ctx: Context) -> None:
        """Learned speeds survive restarts: load them once, then persist new samples."""
        if not self.samples_loaded:
            for sample in await ctx.perf_samples():
                self.dispatcher.tracker.record(sample)
            self.samples_loaded = True
        if self.new_samples:
            batch, self.new_samples[:] = list(self.new_samples), []
            await ctx.add_perf_samples(batch)

    async def _publish(self, ctx: Context) -> None:
        import psutil

        status = self.dispatcher.status()
        usage = self.dispatcher.usage(psutil.virtual_memory().available, psutil.cpu_count() or 1)
        cap = Capacity(gpu_slots=(status["gpu_slots"],) if status["gpu_slots"] else (),
                       cpu_slots=status["cpu_slots"], cpu_threads_per_slot=1,
                       model_vram_gb=0.0, reasons=())
        status["suggestions"] = [s.to_json() for s in
                                 suggest(usage, cap, ctx.settings.transcribe)]
        await ctx.publish(status)

    async def run(self, item: Item, ctx: Context) -> Outcome:
        cfg = ctx.settings.transcribe
        await self._sync_samples(ctx)
        plan = [tuple(c) for c in item.info.get("chunks", [])] or fixed_chunks(
            float(item.duration_s or 0.0), cfg.max_chunk_s)
        bounds = [(float(a), float(b)) for a, b in plan]
        done = await ctx.parts.load("chunk")
        if any(d.get("bounds") != list(bounds[i]) for i, d in done.items() if i < len(bounds)):
            await ctx.parts.clear("chunk")  # the plan changed: start over
            done = {}
        data = DataDir(ctx.data_dir)
        audio = str(data.resolve(item.audio_path) or "")
        todo = [i for i in range(len(bounds)) if i not in done]
        exists = bool(audio) and await asyncio.to_thread(Path(audio).exists)
        if todo and not exists:
            raise Permanent(f"{item.id}: audio file {audio or '(none)'} is missing",
                            kind=kinds.BAD_AUDIO)
        language = cfg.language or None

        async def one(i: int) -> None:
            job = ChunkJob(item.id, i, audio, bounds[i][0], bounds[i][1], language)
            result = await self.dispatcher.run(job)
            segs, quality = result.segments, None
            problem = tx.repetition_problem(segs)
            if problem:
                retry = ChunkJob(item.id, i, audio, bounds[i][0], bounds[i][1], language,
                                 tx.RETRY_OPTIONS)
                result = await self.dispatcher.run(retry)
                segs, quality = result.segments, {"rerun_because": problem,
                                                   "after": tx.repetition_problem(
                                                       result.segments)}
                ctx.log.warning("chunk_rerun", idx=i, reason=problem)
            data = {"bounds": list(bounds[i]), "segments": segs, "language": result.language,
                    "device": result.device, "model": result.model,
                    "elapsed_s": round(result.elapsed_s, 3), "quality": quality}
            await ctx.parts.save("chunk", i, data)
            metrics.chunk_transcribed(result.device, bounds[i][1] - bounds[i][0])
            done[i] = data
            await self._sync_samples(ctx)
            await self._publish(ctx)

        try:
            # one structured group: a failed chunk cancels its siblings (their slots are
            # freed at once), and no chunk outlives the video's run
            async with asyncio.TaskGroup() as group:
                for i in todo:
                    group.create_task(one(i), name=f"chunk:{item.id}:{i}")
        except BaseExceptionGroup as eg:
            raise decisive(eg) from None
        segments = tx.merge_chunks([done[i]["segments"] for i in range(len(bounds))], bounds)
        languages = [done[i]["language"] for i in range(len(bounds))]
        doc = {"video_id": item.id, "title": item.title, "channel": item.channel,
               "language": max(set(languages), key=languages.count) if languages else "",
               "duration_s": bounds[-1][1] if bounds else 0.0,
               "model": done[0]["model"] if done else "",
               "device": sorted({d["device"] for d in done.values()}),
               "source": "whisper",
               "chapters": (item.info.get("meta") or {}).get("chapters") or [],
               "sponsorblock": list(item.info.get("sponsorblock") or []),
               "segments": segments,
               "chunks": [{"idx": i, "start": b[0], "end": b[1],
                           "device": done[i]["device"], "elapsed_s": done[i]["elapsed_s"],
                           "quality": done[i]["quality"]} for i, b in enumerate(bounds)]}
        out_dir = self.out_dir or data.transcripts_dir
        written = await asyncio.to_thread(tx.write_outputs, out_dir, item.id, doc,
                                          cfg.output_formats)
        paths = [data.relative(p) for p in written]  # the database keeps them movable
        if audio and not ctx.settings.download.keep_audio:  # the transcript is safe on disk
            await asyncio.to_thread(Path(audio).unlink, missing_ok=True)
        words = sum(len(s["text"].split()) for s in segments)
        ctx.log.info("video_transcribed", chunks=len(bounds), words=words)
        await ctx.record_event("transcript_made", kind="whisper")
        return Outcome(info={"transcript": {"paths": paths, "language": doc["language"],
                                            "segments": len(segments), "words": words,
                                            "source": "whisper"}})
