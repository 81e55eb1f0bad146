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
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ytpiped import transcription as tx
from ytpiped.config import Settings
from ytpiped.engines.base import (
    BadAudioError,
    ChunkJob,
    ChunkResult,
    Engine,
    EngineError,
    EngineOOM,
    ModelUnavailable,
)
from ytpiped.errors import Permanent, Retryable
from ytpiped.stages.base import Context, Item, Outcome

PRIOR_SPEED = {"gpu": 50.0, "cpu": 4.0}  # audio seconds per second until measured


def fixed_chunks(duration_s: float, max_chunk_s: float) -> list[tuple[float, float]]:
    n = max(1, int(-(-duration_s // max_chunk_s)))
    step = duration_s / n
    return [(round(i * step, 3), round(duration_s if i == n - 1 else (i + 1) * step, 3))
            for i in range(n)]


class Dispatcher:
    """Shares the slots between the chunks of every video in flight."""

    def __init__(self, engines: Sequence[Engine], *, timeout_factor: float = 4.0) -> None:
        self.engines = list(engines)
        self.free: list[Engine] = list(engines)
        self.changed = asyncio.Condition()
        self.speed = {k: v for k, v in PRIOR_SPEED.items()}
        self.timeout_factor = timeout_factor
        self.busy_until: dict[int, float] = {}
        self.audio_done_s = 0.0
        self.busy_s = {"gpu": 0.0, "cpu": 0.0}
        self.started = time.monotonic()
        self.running = 0

    def predicted(self, job: ChunkJob, kind: str) -> float:
        return job.audio_s / self.speed[kind] + 1.0

    def _choose(self, job: ChunkJob) -> Engine | None:
        free_gpu = [e for e in self.free if e.device_kind == "gpu"]
        if free_gpu:
            return free_gpu[0]
        free_cpu = [e for e in self.free if e.device_kind == "cpu"]
        if not free_cpu:
            return None
        gpus = [e for e in self.engines if e.device_kind == "gpu"]
        if not gpus:
            return free_cpu[0]
        now = time.monotonic()
        gpu_ready = min(self.busy_until.get(id(e), now) for e in gpus)
        gpu_finish = max(gpu_ready, now) + self.predicted(job, "gpu")
        cpu_finish = now + self.predicted(job, "cpu")
        return free_cpu[0] if cpu_finish < gpu_finish else None

    async def run(self, job: ChunkJob) -> ChunkResult:
        tried_cpu_after_gpu = False
        attempts = 0
        while True:
            async with self.changed:
                engine = self._choose(job)
                while engine is None:
                    await self.changed.wait()
                    engine = self._choose(job)
                self.free.remove(engine)
            kind = engine.device_kind
            timeout = self.predicted(job, kind) * self.timeout_factor + 60.0
            self.busy_until[id(engine)] = time.monotonic() + self.predicted(job, kind)
            self.running += 1
            began = time.monotonic()
            try:
                result = await engine.transcribe(job, timeout)
            except EngineOOM:
                # lower this GPU's slot count by one: the engine leaves the pool for good
                self.engines.remove(engine)
                with contextlib.suppress(Exception):
                    await engine.close()
                attempts += 1
                if attempts >= 3 or not self.engines:
                    raise
                continue
            except (BadAudioError, ModelUnavailable):
                self._release(engine)
                raise
            except EngineError:
                self._release(engine)
                attempts += 1
                if attempts >= 3:
                    raise
                tried_cpu_after_gpu = kind == "gpu" or tried_cpu_after_gpu
                continue
            finally:
                self.running -= 1
                self.busy_until.pop(id(engine), None)
                self.busy_s[kind] += time.monotonic() - began
            self._release(engine)
            if result.elapsed_s > 0 and job.audio_s > 5:
                observed = job.audio_s / result.elapsed_s
                self.speed[kind] = 0.7 * self.speed[kind] + 0.3 * observed
            self.audio_done_s += job.audio_s
            return result

    def _release(self, engine: Engine) -> None:
        if engine in self.engines:
            self.free.append(engine)

        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def status(self) -> dict[str, Any]:
        elapsed = max(1e-9, time.monotonic() - self.started)
        slots = {k: sum(1 for e in self.engines if e.device_kind == k) for k in ("gpu", "cpu")}
        return {"gpu_slots": slots["gpu"], "cpu_slots": slots["cpu"],
                "busy_fraction_gpu": round(self.busy_s["gpu"] / (elapsed * slots["gpu"]), 3)
                if slots["gpu"] else 0.0,
                "busy_fraction_cpu": round(self.busy_s["cpu"] / (elapsed * slots["cpu"]), 3)
                if slots["cpu"] else 0.0,
                "running_jobs": self.running,
                "rate_audio_s_per_s": round(self.audio_done_s / elapsed, 2),
                "speed": {k: round(v, 2) for k, v in self.speed.items()}}


class TranscribeStage:
    name = "transcribe"

    def __init__(self, settings: Settings, engines: Sequence[Engine],
                 out_dir: Path | None = None) -> None:
        self.settings = settings
        self.out_dir = out_dir  # default: DATA/transcripts
        self.dispatcher = Dispatcher(engines,
                                     timeout_factor=settings.transcribe.job_timeout_factor)
        self.concurrency = max(1, len(engines)) + 1

    async def start(self) -> None:
        await asyncio.gather(*(e.start() for e in self.dispatcher.engines))

    async def close(self) -> None:
        await asyncio.gather(*(e.close() for e in self.dispatcher.engines),
                             return_exceptions=True)

    async def run(self, item: Item, ctx: Context) -> Outcome:
        cfg = ctx.settings.transcribe
        plan = [tuple(c) for c in item.info.get("chunks", [])] or fixed_chunks(
            float(item.duration_s or 0.0), cfg.max_chunk_s)
        bounds = [(float(a), float(b)) for a, b in plan]
        done = await ctx.parts.load("chunk")
        if any(d.get("bounds") != list(bounds[i]) for i, d in done.items() if i < len(bounds)):
            await ctx.parts.clear("chunk")  # the plan changed: start over
            done = {}
        audio = item.audio_path or ""
        if audio and not Path(audio).is_absolute():
            audio = str(ctx.data_dir / audio)
        todo = [i for i in range(len(bounds)) if i not in done]
        exists = bool(audio) and await asyncio.to_thread(Path(audio).exists)
        if todo and not exists:
            raise Permanent(f"{item.id}: audio file {audio or '(none)'} is missing",
                            kind="bad_audio")
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
            done[i] = data
            await ctx.publish(self.dispatcher.status())

        try:
            await asyncio.gather(*(one(i) for i in todo))
        except BadAudioError as exc:
            raise Permanent(str(exc), kind="bad_audio") from None
        except ModelUnavailable as exc:
            raise Retryable(str(exc), kind="model_unavailable", defer=600.0) from None
        except EngineError as exc:
            raise Retryable(str(exc), kind=type(exc).__name__) from None
        segments = tx.merge_chunks([done[i]["segments"] for i in range(len(bounds))], bounds)
        languages = [done[i]["language"] for i in range(len(bounds))]
        doc = {"video_id": item.id, "title": item.title, "channel": item.channel,
               "language": max(set(languages), key=languages.count) if languages else "",
               "duration_s": bounds[-1][1] if bounds else 0.0,
               "model": done[0]["model"] if done else "",
               "device": sorted({d["device"] for d in done.values()}),
               "segments": segments,
               "chunks": [{"idx": i, "start": b[0], "end": b[1],
                           "device": done[i]["device"], "elapsed_s": done[i]["elapsed_s"],
                           "quality": done[i]["quality"]} for i, b in enumerate(bounds)]}
        out_dir = self.out_dir or ctx.data_dir / "transcripts"
        paths = await asyncio.to_thread(tx.write_outputs, out_dir, item.id, doc,
                                        cfg.output_formats)
        if audio and not ctx.settings.download.keep_audio:  # the transcript is safe on disk
            await asyncio.to_thread(Path(audio).unlink, missing_ok=True)
        words = sum(len(s["text"].split()) for s in segments)
        ctx.log.info("video_transcribed", chunks=len(bounds), words=words)
        return Outcome(info={"transcript": {"paths": paths, "language": doc["language"],
                                            "segments": len(segments), "words": words}})
