"""The seam between the transcription scheduler and whatever runs Whisper.

An `Engine` is one slot: one loaded model on one device. The stage's dispatcher hands it
`ChunkJob`s; it returns `ChunkResult`s with absolute timestamps or raises one of the
typed errors below, which map to the scheduler's failure decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChunkJob:
    video_id: str
    idx: int
    path: str
    start_s: float
    end_s: float
    language: str | None = None
    retry_options: dict[str, Any] = field(default_factory=dict)

    @property
    def audio_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


@dataclass(frozen=True)
class ChunkResult:
    segments: list[dict[str, Any]]  # {"start", "end", "text"} in absolute seconds
    language: str
    elapsed_s: float
    device: str
    model: str


class EngineError(Exception):
    """Base of engine failures."""


class EngineCrashed(EngineError):
    """The worker died mid-job."""


class EngineTimeout(EngineError):
    """The job ran far past its predicted time (a hang)."""


class EngineOOM(EngineError):
    """CUDA out of memory."""


class BadAudioError(EngineError):
    """The audio cannot be decoded; retrying will not help."""


class ModelUnavailable(EngineError):
    """The configured model cannot be loaded (names the config key)."""


class Engine(Protocol):
    device_kind: str  # "gpu" | "cpu"
    device_name: str  # "cuda:0", "cpu"
    model: str

    async def start(self) -> None: ...

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult: ...

    async def close(self) -> None: ...


OOM_MARKERS = ("out of memory", "CUDA_ERROR_OUT_OF_MEMORY")


def classify_error(text: str) -> type[EngineError]:
    if any(m.lower() in text.lower() for m in OOM_MARKERS):
        return EngineOOM
    return EngineCrashed
