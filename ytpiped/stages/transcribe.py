"""Transcribe stage: analyzed -> transcribing -> transcribed.

Every video is cut into chunks (the analysis plan, else fixed points at `max_chunk_s`);
chunks of all videos in flight share one `Dispatcher` over the slots (one Engine each,
GPU and CPU). Each finished chunk is persisted at once, so a restart resumes at the next
chunk; the video is merged and written as json/txt/srt/vtt.

- The language is detected once per video (on the first 30 s, unless the config or the
  source names it) and then fixed for every chunk; its probability is recorded.
- One model per video: when GPU and CPU slots run different models, a whole video stays
  on one of them (the dispatcher places videos, not chunks); every segment records its
  model and device, and the transcript lists every model used.
- Repetition loops are found per segment and only the looping span is transcribed again
  (Whisper's temperature fallback, no conditioning); each re-run is recorded.
- A video `ytpiped retranscribe --model M` sent back runs on slots of model M: the
  configured slots when one of them runs M, else slots of M started for it (built by
  `engine_factory`) and closed when no video in flight needs them any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ytpiped import kinds, metrics
from ytpiped import transcription as tx
from ytpiped.clock import Clock, SystemClock
from ytpiped.config import Settings
from ytpiped.engines.base import (
    BadAudioError,
    ChunkJob,
    Engine,
    EngineError,
    ModelUnavailable,
    batch_sizes,
    decode_options,
)
from ytpiped.engines.dispatcher import Dispatcher
from ytpiped.errors import Permanent, Retryable
from ytpiped.paths import DataDir
from ytpiped.retranscribe import wanted_model
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
                 out_dir: Path | None = None, clock: Clock | None = None,
                 engine_factory: Callable[[str], Sequence[Engine]] | None = None) -> None:
        self.settings = settings
        self.out_dir = out_dir  # default: DATA/transcripts
        self.new_samples: list[PerfSample] = []
        self.samples_loaded = False
        self.seen_audio = [0.0, 0]  # audio seconds and videos seen (backlog estimate)
        self.clock = clock or SystemClock()
        self.dispatcher = self._dispatcher(engines)
        # slots of a model `retranscribe --model` asked for: model -> (dispatcher, videos)
        self.engine_factory = engine_factory
        self.other_models: dict[str, tuple[Dispatcher, set[str], asyncio.Future[Any]]] = {}
        self.concurrency = max(1, len(engines)) + 1

    def _dispatcher(self, engines: Sequence[Engine]) -> Dispatcher:
        cfg = self.settings.transcribe
        return Dispatcher(
            list(engines), policy=cfg.policy,
            rules=Rules(cfg.max_cpu_time_s, cfg.stop_cpu_at_progress),
            timeout_factor=cfg.job_timeout_factor,
            max_attempts=cfg.chunk_attempts,
            compute_types={"gpu": cfg.compute_type_gpu, "cpu": cfg.compute_type_cpu},
            batch_sizes=batch_sizes(self.settings), on_sample=self.new_samples.append,
            clock=self.clock, max_batch_audio_s=cfg.max_batch_audio_s,
            gpu_adaptive=cfg.gpu_slots_adaptive and cfg.gpu_slots is None)

    async def _take(self, item: Item) -> Dispatcher:
        """The dispatcher whose slots run the model this video must use."""
        model = wanted_model(item.info)
        if model is None:
            return self.dispatcher
        if model in {e.model for e in self.dispatcher.engines}:
            if self.dispatcher.per_video:
                self.dispatcher.pin(item.id, model)
            return self.dispatcher
        if model not in self.other_models:
            engines: Sequence[Engine]
            if self.engine_factory is None:
                from ytpiped.pipeline import build_engines, with_model

                engines = build_engines(with_model(self.settings, model))
            else:
                engines = self.engine_factory(model)
            d = self._dispatcher(engines)
            started = asyncio.ensure_future(asyncio.gather(*(e.start() for e in d.usable())))
            self.other_models[model] = (d, set(), started)
        d, videos, started = self.other_models[model]
        videos.add(item.id)
        try:
            await asyncio.shield(started)  # one start, however many videos wait for it
        except ModelUnavailable as exc:  # retried later, as a configured model would be
            raise Retryable(f"model {model!r} (asked for by `ytpiped retranscribe --model`) "
                            f"cannot be loaded: {exc}", kind=kinds.MODEL_UNAVAILABLE,
                            defer=600.0) from None
        except EngineError as exc:
            raise decisive(BaseExceptionGroup("slots of the requested model", [exc])) from None
        return d

    async def _give_back(self, item: Item) -> None:
        """Close the slots of a requested model once no video in flight uses them."""
        for model, (d, videos, _) in list(self.other_models.items()):
            videos.discard(item.id)
            if not videos:
                del self.other_models[model]
                await asyncio.gather(*(e.close() for e in d.engines), return_exceptions=True)

    async def start(self, ctx: Context | None = None) -> None:
        await asyncio.gather(*(e.start() for e in self.dispatcher.usable()))

    async def close(self) -> None:
        engines = [e for d in [self.dispatcher, *(d for d, _, _ in self.other_models.values())]
                   for e in d.engines]
        self.other_models.clear()
        await asyncio.gather(*(e.close() for e in engines), return_exceptions=True)

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

    async def _note_backlog(self, item: Item, ctx: Context) -> None:
        """Tell the dispatcher how much audio waits behind this video (endgame rule)."""
        self.seen_audio[0] += float(item.duration_s or 0.0)
        self.seen_audio[1] += 1
        waiting = int((await ctx.counts()).get("analyzed", 0))
        self.dispatcher.upcoming_s = waiting * self.seen_audio[0] / max(1, self.seen_audio[1])

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
        await self._note_backlog(item, ctx)
        try:
            d = await self._take(item)
            d.begin_video(item.id, sum(bounds[i][1] - bounds[i][0] for i in todo))
            try:
                await self._chunks(d, item, ctx, bounds, done, todo, audio)
            finally:
                d.end_video(item.id)
        finally:
            await self._give_back(item)
        return await self._finish(item, ctx, bounds, done, audio)

    async def _language(self, d: Dispatcher, item: Item, ctx: Context,
                        bounds: list[tuple[float, float]],
                        done: dict[int, Any], todo: list[int], audio: str
                        ) -> tuple[str | None, float | None]:
        """The video's language: the config's, the source's, an earlier chunk's, or
        detected once on the first 30 s (None: the single chunk detects it itself)."""
        cfg = ctx.settings.transcribe
        known = cfg.language or str(item.info.get("language") or "")
        if known:
            return known, None
        if done:
            first = done[min(done)]
            return first["language"], first.get("language_probability")
        if len(todo) <= 1:
            return None, None
        lo, hi = bounds[todo[0]]
        result = await d.run(ChunkJob(item.id, -1, audio, lo, hi, detect_only=True))
        ctx.log.info("language_detected", language=result.language,
                     probability=result.language_probability)
        return result.language, result.language_probability

    async def _chunks(self, d: Dispatcher, item: Item, ctx: Context,
                      bounds: list[tuple[float, float]], done: dict[int, Any], todo: list[int],
                      audio: str) -> None:
        models = {v.get("model") for v in done.values()}
        if len(models) == 1:
            d.pin(item.id, str(next(iter(models))))
        language, probability = await self._language(d, item, ctx, bounds, done, todo, audio)

        async def one(i: int) -> None:
            lo, hi = bounds[i]
            result = await d.run(ChunkJob(item.id, i, audio, lo, hi, language))
            segs, reruns = list(result.segments), []
            for loop in tx.find_loops(segs):
                span = tx.rerun_span(loop, (lo, hi))
                again = await d.run(ChunkJob(item.id, i, audio, span[0], span[1],
                                             result.language, tx.RETRY_OPTIONS))
                segs = tx.splice(segs, span, again.segments)
                after = tx.find_loops([s for s in segs if span[0] <= s["start"] < span[1]])
                reruns.append({**loop.to_json(), "span": list(span),
                               "after": after[0].reason if after else None})
                ctx.log.warning("span_rerun", idx=i, start=span[0], end=span[1],
                                reason=loop.reason)
            for s in segs:
                s["model"], s["device"] = result.model, result.device
            part = {"bounds": [lo, hi], "segments": segs, "language": result.language,
                    "language_probability": probability if probability is not None
                    else result.language_probability,
                    "device": result.device, "model": result.model,
                    "elapsed_s": round(result.elapsed_s, 3),
                    "quality": {"reruns": reruns} if reruns else None}
            await ctx.parts.save("chunk", i, part)
            metrics.chunk_transcribed(result.device, hi - lo)
            done[i] = part
            await self._sync_samples(ctx)
            await self._publish(ctx)

        async def group(indices: list[int]) -> None:
            try:
                # one structured group: a failed chunk cancels its siblings (their slots
                # are freed at once), and no chunk outlives the video's run
                async with asyncio.TaskGroup() as tasks:
                    for i in indices:
                        tasks.create_task(one(i), name=f"chunk:{item.id}:{i}")
            except BaseExceptionGroup as eg:
                raise decisive(eg) from None

        await group(todo)
        if d.per_video:  # a slot kind lost mid-video (out of memory): redo the rest on one
            counts: dict[str, float] = {}
            for v in done.values():
                counts[v["model"]] = counts.get(v["model"], 0.0) + v["bounds"][1] - \
                    v["bounds"][0]
            if len(counts) > 1:
                keep = d.model_for(item.id) or max(counts, key=lambda m: counts[m])
                d.pin(item.id, keep)
                await group([i for i, v in done.items() if v["model"] != keep])

    async def _finish(self, item: Item, ctx: Context, bounds: list[tuple[float, float]],
                      done: dict[int, Any], audio: str) -> Outcome:
        cfg = ctx.settings.transcribe
        data = DataDir(ctx.data_dir)
        segments = tx.merge_chunks([done[i]["segments"] for i in range(len(bounds))], bounds)
        languages = [done[i]["language"] for i in range(len(bounds))]
        models: dict[str, float] = {}
        for i, (lo, hi) in enumerate(bounds):
            models[done[i]["model"]] = models.get(done[i]["model"], 0.0) + hi - lo
        language = max(set(languages), key=languages.count) if languages else ""
        probs = [done[i].get("language_probability") for i in range(len(bounds))
                 if done[i]["language"] == language]
        doc = {"video_id": item.id, "title": item.title, "channel": item.channel,
               "language": language,
               "language_probability": next((p for p in probs if p is not None), None),
               "duration_s": bounds[-1][1] if bounds else 0.0,
               "model": max(models, key=lambda m: models[m]) if models else "",
               "models": sorted(models),
               "device": sorted({d["device"] for d in done.values()}),
               "source": "whisper",
               "chapters": (item.info.get("meta") or {}).get("chapters") or [],
               "sponsorblock": list(item.info.get("sponsorblock") or []),
               "options": _options_json(ctx.settings),
               "segments": segments,
               "chunks": [{"idx": i, "start": b[0], "end": b[1], "model": done[i]["model"],
                           "device": done[i]["device"], "elapsed_s": done[i]["elapsed_s"],
                           "quality": done[i]["quality"]} for i, b in enumerate(bounds)]}
        out_dir = self.out_dir or data.transcripts_dir
        written = await asyncio.to_thread(tx.write_outputs, out_dir, item.id, doc,
                                          cfg.output_formats)
        paths = [data.relative(p) for p in written.values()]  # the database keeps them movable
        if audio and not ctx.settings.download.keep_audio:  # the transcript is safe on disk
            await asyncio.to_thread(Path(audio).unlink, missing_ok=True)
        words = sum(len(s["text"].split()) for s in segments)
        ctx.log.info("video_transcribed", chunks=len(bounds), words=words)
        await ctx.record_event("transcript_made", kind="whisper")
        return Outcome(info={"transcript": {"paths": paths, "language": doc["language"],
                                            "segments": len(segments), "words": words,
                                            "source": "whisper", "model": doc["model"],
                                            "models": doc["models"]}})


def _options_json(settings: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = decode_options(settings).to_json()
    return opts
