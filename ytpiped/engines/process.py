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
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ytpiped.engines.base import (
    BadAudioError,
    ChunkJob,
    ChunkResult,
    DecodeOptions,
    EngineCrashed,
    EngineError,
    EngineOOM,
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
    options: DecodeOptions = field(default_factory=DecodeOptions)

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


def _serve(conn: Connection, spec: EngineSpec, parent_pid: int) -> None:
    """Child process main loop. A message is {"seq", "jobs": [job, ...]}; the reply is
    ("done", [per-job reply, ...], seq) (see `whisper.run_jobs`)."""
    die_with_parent(parent_pid)
    from ytpiped.engines.whisper import Loaded, run_jobs

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
    loaded = Loaded(model, pipeline, spec.batch_size, spec.options)
    conn.send(("ready", {"pid": os.getpid(),
                         "multilingual": bool(model.model.is_multilingual)}, 0))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        jobs = [ChunkJob(**j) for j in msg["jobs"]]
        try:
            replies = run_jobs(loaded, jobs)
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}\n"
                                f"{traceback.format_exc(limit=3)}", msg["seq"]))
            continue
        conn.send(("done", replies, msg["seq"]))


class ProcessEngine:
    """One slot. `transcribe`/`transcribe_batch` are safe to call from the event loop; one
    call at a time."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.device_kind = spec.device_kind
        self.device_name = spec.device_name
        self.model = spec.model
        self.max_batch = max(1, spec.batch_size)
        self.multilingual: bool | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._ready = False  # the child said it loaded its model
        self._lock = asyncio.Lock()
        self._seq = 0
        self.restarts = 0
        self.calls = 0  # transcribe calls sent to the worker (0: this slot never ran)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    @property
    def started(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def spawn(self) -> None:
        """Start the child process, which loads its model while the caller goes on; `start`
        waits until it is ready. From the thread that runs the event loop (see
        `die_with_parent`)."""
        if self.started:
            return
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.spec, os.getpid()), daemon=True,
                           name=f"ytpiped-whisper-{self.device_name}")
        proc.start()
        child.close()
        self._proc, self._conn, self._ready = proc, parent, False

    async def start(self) -> None:
        """Start the child if `spawn` did not, and wait until its model is loaded."""
        if self.started and self._ready:
            return
        self.spawn()
        parent = self._conn
        assert parent is not None
        status, payload = await asyncio.to_thread(_recv, parent, LOAD_TIMEOUT_S, 0)
        if status != "ready":
            await self._kill()
            if status == "model":
                raise ModelUnavailable(str(payload))
            raise EngineCrashed(f"{self.device_name}: worker failed to start: {payload}")
        self.multilingual = bool(payload["multilingual"])
        self._ready = True

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        (result,) = await self.transcribe_batch([job], timeout_s)
        if isinstance(result, EngineError):
            raise result
        return result

    async def transcribe_batch(self, jobs: list[ChunkJob], timeout_s: float
                               ) -> list[ChunkResult | EngineError]:
        """One reply per job: a result, or the error of that job alone. A crash, hang or
        out-of-memory of the worker raises (it concerns every job of the call)."""
        async with self._lock:
            if not (self.started and self._ready):
                await self.start()  # also waits for a child that `spawn` left loading
            conn = self._conn
            assert conn is not None
            self._seq += 1
            self.calls += 1
            conn.send({"seq": self._seq, "jobs": [asdict(j) for j in jobs]})
            reply = asyncio.ensure_future(asyncio.to_thread(_recv, conn, timeout_s, self._seq))
            try:
                status, payload = await asyncio.shield(reply)
            except asyncio.CancelledError:
                # nobody wants these chunks any more, but the child is busy with them:
                # replace the child so that its reply cannot be taken for the next job's
                await asyncio.shield(self._abandon(reply))
                raise
            if status == "done":
                out = [self._result(job, r) for job, r in zip(jobs, payload, strict=True)]
                oom = next((e for e in out if isinstance(e, EngineOOM)), None)
                if oom is not None:  # CUDA memory is in an unknown state: a fresh worker
                    await self._kill()
                    self.restarts += 1
                    raise oom
                return out
            await self._kill()
            self.restarts += 1  # a fresh worker starts with the next job
            what = f"{jobs[0].video_id} chunk {jobs[0].idx}" + (
                f" (+{len(jobs) - 1} more)" if len(jobs) > 1 else "")
            if status == "timeout":
                raise EngineTimeout(f"{self.device_name}: no answer within {timeout_s:.0f} s "
                                    f"for {what}; worker replaced")
            if status == "error":
                raise classify_error(str(payload))(f"{self.device_name}: {payload}")
            raise EngineCrashed(f"{self.device_name}: worker died during {what} ({payload}); "
                                "worker replaced")

    def _result(self, job: ChunkJob, reply: tuple[str, Any]) -> ChunkResult | EngineError:
        status, payload = reply
        if status == "ok":
            return ChunkResult(segments=payload["segments"], language=payload["language"],
                               elapsed_s=payload["elapsed_s"], device=self.device_name,
                               model=self.spec.model,
                               language_probability=payload["language_probability"],
                               batched_with=payload["batched_with"])
        if status == "bad_audio":
            return BadAudioError(str(payload))
        return classify_error(str(payload))(f"{self.device_name}: {job.video_id} chunk "
                                            f"{job.idx}: {payload}")

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
        """Let the child finish and exit; one still loading its model is killed."""
        if self._conn is not None and self.started and self._ready:
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
