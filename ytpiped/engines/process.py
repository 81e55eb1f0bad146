"""A Whisper slot as a long-lived child process (spawned, never forked).

The child loads one faster-whisper model once, then serves chunk jobs over a pipe. The
parent waits for answers in a thread, so the event loop never blocks. A crash (the
child exits), a hang (no answer within the job's timeout) or CUDA out-of-memory kills
and replaces the child and raises the matching EngineError.

Every job carries a sequence number that its reply repeats; a job whose caller is
cancelled (a sibling chunk failed, the lease was lost, shutdown) replaces the child, so a
reply nobody waits for can never be read as the answer to the next job. The child dies
with the daemon: it asks the kernel for SIGKILL when its parent exits (Linux
`PR_SET_PDEATHSIG`) and also checks its parent between jobs and while it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing as mp
import os
import signal
import sys
import threading
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
PARENT_CHECK_S = 1.0  # how often a child checks that the daemon is still alive
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """In a child process: be killed when the parent exits, even by kill -9.

    Linux delivers the signal when the parent *thread* that started the child exits, so
    engines are started from the event loop's thread. The check after prctl closes the
    race where the parent died before the call; a watcher thread covers systems without
    prctl."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


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


def _serve(conn: Connection, spec: EngineSpec, parent_pid: int) -> None:
    """Child process main loop. Replies are (status, payload, seq of the job)."""
    die_with_parent(parent_pid)
    from ytpiped.audio.decode import BadAudio

    try:
        model = _load(spec)
        pipeline = None
        if spec.batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            pipeline = BatchedInferencePipeline(model)
    except ModelUnavailable as exc:
        conn.send(("model", str(exc), 0))
        return
    except Exception as exc:
        conn.send(("model", f"key '{spec.model_key}': cannot load {spec.model!r} (use the path "
                            f"of a local CTranslate2 Whisper model, or check the network): "
                            f"{exc}", 0))
        return
    conn.send(("ready", os.getpid(), 0))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        seq = msg.pop("seq")
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
                              "elapsed_s": time.monotonic() - t0}, seq))
        except BadAudio as exc:
            conn.send(("bad_audio", str(exc), seq))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
                       seq))


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
        self._seq = 0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    async def start(self) -> None:
        """Start the child (from the event loop's thread: see `die_with_parent`)."""
        if self._proc is not None and self._proc.is_alive():
            return
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.spec, os.getpid()), daemon=True,
                           name=f"ytpiped-whisper-{self.device_name}")
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        status, payload = await asyncio.to_thread(_recv, parent, LOAD_TIMEOUT_S, 0)
        if status != "ready":
            await self._kill()
            if status == "model":
                raise ModelUnavailable(str(payload))
            raise EngineCrashed(f"{self.device_name}: worker failed to start: {payload}")

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        async with self._lock:
            if self._proc is None or not self._proc.is_alive():
                await self.start()
            conn = self._conn
            assert conn is not None
            self._seq += 1
            conn.send({"seq": self._seq, **asdict(job)})
            reply = asyncio.ensure_future(asyncio.to_thread(_recv, conn, timeout_s, self._seq))
            try:
                status, payload = await asyncio.shield(reply)
            except asyncio.CancelledError:
                # nobody wants this chunk any more, but the child is busy with it: replace
                # the child so that its reply cannot be taken for the next job's
                await asyncio.shield(self._abandon(reply))
                raise
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

    async def _abandon(self, reply: asyncio.Future[tuple[str, Any]]) -> None:
        """Kill the child of a cancelled job and wait until its reader thread is done."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self.restarts += 1
        if proc is not None and proc.is_alive():
            proc.kill()
        with contextlib.suppress(Exception):
            await reply  # the reader sees EOF once the child is gone
        if conn is not None:
            conn.close()
        if proc is not None:
            await asyncio.to_thread(proc.join, 10)

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


def _recv(conn: Connection, timeout_s: float, seq: int) -> tuple[str, Any]:
    """The reply to job `seq` (a reply to any other job is dropped), or ("timeout", None)
    / ("crashed", why). Runs in a thread."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not conn.poll(left):
                return "timeout", None
            status, payload, got = conn.recv()
            if got == seq:
                return status, payload
    except (EOFError, OSError) as exc:
        return "crashed", f"{type(exc).__name__}"
