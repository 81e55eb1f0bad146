"""A Whisper slot as a long-lived child process (spawned, never forked).

The child loads one faster-whisper model once, then serves chunk jobs over a pipe. The
parent waits for answers in a thread, so the event loop never blocks. A crash (the
child exits), a hang (no answer within the job's timeout) or CUDA out-of-memory kills
and replaces the child and raises the matching EngineError.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ytpiped.engines.base import (
    BadAudioError,
    ChunkJob,
    ChunkResult,
    EngineCrashed,
    EngineTimeout,
    ModelUnavailable,
    classify_error,
)

LOAD_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class EngineSpec:
    model: str  # name or path of a CTranslate2 Whisper model
    model_key: str  # config key naming it, for error messages
    device: str = "cpu"  # "cpu" | "cuda"
    device_index: int = 0
    compute_type: str = "int8"
    cpu_threads: int = 1
    batch_size: int = 1  # > 1: BatchedInferencePipeline
    allow_download: bool = False
    beam_size: int = 5

    @property
    def device_kind(self) -> str:
        return "gpu" if self.device == "cuda" else "cpu"

    @property
    def device_name(self) -> str:
        return f"cuda:{self.device_index}" if self.device == "cuda" else "cpu"


def _load(spec: EngineSpec) -> Any:
    from faster_whisper import WhisperModel

    local = Path(spec.model).expanduser()
    kwargs: dict[str, Any] = {"device": spec.device, "device_index": spec.device_index,
                              "compute_type": spec.compute_type, "cpu_threads": spec.cpu_threads}
    if local.exists():
        return WhisperModel(str(local), **kwargs)
    try:
        return WhisperModel(spec.model, local_files_only=True, **kwargs)
    except Exception:
        if not spec.allow_download:
            raise ModelUnavailable(
                f"key '{spec.model_key}': model {spec.model!r} is not available offline; set "
                f"it to the path of a local CTranslate2 Whisper model directory, or allow "
                f"downloads with transcribe.allow_download = true") from None
    return WhisperModel(spec.model, **kwargs)


def _slice(path: str, start_s: float, end_s: float) -> Any:
    import numpy as np

    from ytpiped.audio.decode import RATE, blocks

    lo, hi = round(start_s * RATE), round(end_s * RATE)
    parts, pos = [], 0
    for block in blocks(path):
        a, b = pos, pos + block.size
        if b > lo and a < hi:
            parts.append(block[max(0, lo - a): min(block.size, hi - a)])
        pos = b
        if pos >= hi:
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _serve(conn: Connection, spec: EngineSpec) -> None:
    """Child process main loop."""
    from ytpiped.audio.decode import BadAudio

    try:
        model = _load(spec)
        pipeline = None
        if spec.batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            pipeline = BatchedInferencePipeline(model)
    except ModelUnavailable as exc:
        conn.send(("model", str(exc)))
        return
    except Exception as exc:
        conn.send(("model", f"key '{spec.model_key}': cannot load {spec.model!r} (use the path "
                            f"of a local CTranslate2 Whisper model, or check the network): "
                            f"{exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        job = ChunkJob(**msg)
        t0 = time.monotonic()
        try:
            audio = _slice(job.path, job.start_s, job.end_s)
            opts: dict[str, Any] = {"language": job.language or None,
                                    "beam_size": spec.beam_size, **job.retry_options}
            if pipeline is not None:
                segments, info = pipeline.transcribe(audio, batch_size=spec.batch_size, **opts)
            else:
                segments, info = model.transcribe(audio, vad_filter=False, **opts)
            out = [{"start": round(job.start_s + s.start, 3), "end": round(job.start_s + s.end, 3),
                    "text": s.text.strip(), "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob} for s in segments]
            conn.send(("ok", {"segments": out, "language": info.language,
                              "elapsed_s": time.monotonic() - t0}))
        except BadAudio as exc:
            conn.send(("bad_audio", str(exc)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))


class ProcessEngine:
    """One slot. `transcribe` is safe to call from the event loop; one job at a time."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.device_kind = spec.device_kind
        self.device_name = spec.device_name
        self.model = spec.model
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    async def start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.spec), daemon=True,
                           name=f"ytpiped-whisper-{self.device_name}")
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        status, payload = await asyncio.to_thread(self._recv, LOAD_TIMEOUT_S)
        if status != "ready":
            await self._kill()
            if status == "model":
                raise ModelUnavailable(str(payload))
            raise EngineCrashed(f"{self.device_name}: worker failed to start: {payload}")

    def _recv(self, timeout_s: float) -> tuple[str, Any]:
        conn = self._conn
        if conn is None:
            return "crashed", "no worker"
        try:
            if not conn.poll(timeout_s):
                return "timeout", None
            msg: tuple[str, Any] = conn.recv()
            return msg
        except (EOFError, OSError) as exc:
            return "crashed", f"{type(exc).__name__}"

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        async with self._lock:
            if self._proc is None or not self._proc.is_alive():
                await self.start()
            assert self._conn is not None
            self._conn.send(asdict(job))
            status, payload = await asyncio.to_thread(self._recv, timeout_s)
            if status == "ok":
                return ChunkResult(segments=payload["segments"], language=payload["language"],
                                   elapsed_s=payload["elapsed_s"], device=self.device_name,
                                   model=self.spec.model)
            if status == "bad_audio":
                raise BadAudioError(str(payload))
            await self._kill()
            self.restarts += 1  # a fresh worker starts with the next job
            if status == "timeout":
                raise EngineTimeout(f"{self.device_name}: no answer within {timeout_s:.0f} s "
                                    f"for {job.video_id} chunk {job.idx}; worker replaced")
            if status == "error":
                raise classify_error(str(payload))(f"{self.device_name}: {payload}")
            raise EngineCrashed(f"{self.device_name}: worker died during {job.video_id} chunk "
                                f"{job.idx} ({payload}); worker replaced")

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            await asyncio.to_thread(proc.join, 10)

    async def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            await asyncio.to_thread(self._proc.join, 5)
        await self._kill()
