"""The seam between the transcription scheduler and whatever runs Whisper.

An `Engine` is one slot: one loaded model on one device. The stage's dispatcher hands it
`ChunkJob`s; it returns `ChunkResult`s with absolute timestamps or raises one of the
typed errors below, which map to the scheduler's failure decisions. An engine that can
run several chunks as one batched forward pass also offers `transcribe_batch`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ytpiped.config import Settings


@dataclass(frozen=True)
class DecodeOptions:
    """The Whisper options a user sets (`[transcribe]`), the same on every path."""

    beam_size: int = 5
    vad_filter: bool = False
    word_timestamps: bool = False
    initial_prompt: str = ""
    hotwords: str = ""
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    condition_on_previous_text: bool = False

    def whisper_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of faster-whisper's `transcribe`."""
        return {"beam_size": self.beam_size, "vad_filter": self.vad_filter,
                "word_timestamps": self.word_timestamps,
                "initial_prompt": self.initial_prompt or None,
                "hotwords": self.hotwords or None, "temperature": list(self.temperature),
                "condition_on_previous_text": self.condition_on_previous_text}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["temperature"] = list(self.temperature)
        return d


@dataclass(frozen=True)
class ChunkJob:
    video_id: str
    idx: int
    path: str
    start_s: float
    end_s: float
    language: str | None = None
    retry_options: dict[str, Any] = field(default_factory=dict)
    detect_only: bool = False  # only detect the language (in the first 30 s)

    @property
    def audio_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @property
    def group(self) -> str:
        """Jobs of one group may run as one batched pass (same language and options)."""
        return json.dumps([self.language, self.retry_options, self.detect_only],
                          sort_keys=True)


@dataclass(frozen=True)
class ChunkResult:
    segments: list[dict[str, Any]]  # {"start", "end", "text", ...} in absolute seconds
    language: str
    elapsed_s: float
    device: str
    model: str
    language_probability: float = 1.0
    batched_with: int = 1  # chunks in the forward pass that produced this result


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


@runtime_checkable
class BatchEngine(Engine, Protocol):
    """An engine that runs up to `max_batch` chunks as one batched forward pass; one
    chunk's failure is its own (an error in its place), the others still answer."""

    max_batch: int
    multilingual: bool | None  # None: not known before the model loaded

    async def transcribe_batch(self, jobs: list[ChunkJob], timeout_s: float
                               ) -> list[ChunkResult | EngineError]: ...


OOM_MARKERS = ("out of memory", "CUDA_ERROR_OUT_OF_MEMORY")


def classify_error(text: str) -> type[EngineError]:
    if any(m.lower() in text.lower() for m in OOM_MARKERS):
        return EngineOOM
    return EngineCrashed


def decode_options(settings: Settings) -> DecodeOptions:
    """The Whisper options of every slot, from `transcribe.*`."""
    t = settings.transcribe
    return DecodeOptions(beam_size=t.beam_size, vad_filter=t.vad_filter,
                         word_timestamps=t.word_timestamps, initial_prompt=t.initial_prompt,
                         hotwords=t.hotwords, temperature=tuple(t.temperature),
                         condition_on_previous_text=t.condition_on_previous_text)


def batch_sizes(settings: Settings) -> dict[str, int]:
    """Windows per forward pass by device kind; conditioning on the previous window's
    text needs the sequential decoder, so it turns batching off."""
    t = settings.transcribe
    if t.condition_on_previous_text:
        return {"gpu": 1, "cpu": 1}
    return {"gpu": t.batch_size, "cpu": t.batch_size_cpu}
