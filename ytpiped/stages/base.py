"""The seam between the generic worker and a pipeline stage.

A stage is a plain object with a `name` (a key of `states.STAGES`) and
`async def run(item, ctx) -> Outcome`. It never touches SQL: it reads the claimed
`Item`, uses `ctx` for everything persistent (sub-work rows, new videos, events), and
returns the fields to store. It signals decisions by raising `Retryable`, `Permanent`
or `Cooldown` (ytpiped.errors); anything else is retried with backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog

from ytpiped.clock import Clock
from ytpiped.config import Settings
from ytpiped.scheduling.tracker import PerfSample


@dataclass(frozen=True)
class Item:
    """A claimed video row, as the stage sees it."""

    id: str
    url: str
    kind: str  # video | playlist | channel | generic
    state: str
    attempts: int
    title: str | None = None
    channel: str | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    audio_path: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0
    parent_id: str | None = None  # the playlist, channel or feed that added it


@dataclass(frozen=True)
class Outcome:
    """What a finished stage hands back for the worker to persist.

    `fields` are video columns (title, channel, upload_date, duration_s, size_bytes,
    audio_path); `info` is merged into the row's JSON `info` blob; `finished_state`
    overrides the stage's normal next state (a playlist row goes to `done`).
    """

    fields: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    finished_state: str | None = None


class Parts(Protocol):
    """Sub-work rows keyed (video_id, kind, idx): chunks, windows. Persisted at once."""

    async def load(self, kind: str) -> dict[int, Any]:
        """idx -> stored JSON data of every finished part of this kind."""

    async def save(self, kind: str, idx: int, data: Any) -> None:
        """Record one finished part (idempotent: saving an idx again replaces it)."""

    async def clear(self, kind: str) -> None:
        """Forget all parts of this kind (when a plan changes)."""


class Context(Protocol):
    """What a stage may use while it runs one item."""

    @property
    def clock(self) -> Clock: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger: ...

    @property
    def parts(self) -> Parts: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def owner(self) -> str:
        """Who runs this stage: "HOST:PID" (as on the leases it holds)."""
        ...

    async def add_videos(self, urls: Sequence[str], parent_id: str) -> tuple[int, int]:
        """Queue new video rows found while working (playlist expansion) -> (added, duplicate)."""

    async def record_event(self, event: str, *, kind: str | None = None,
                           message: str | None = None) -> None:
        """Append to the events log (shown by status, counted in metrics)."""

    async def counts(self) -> Mapping[str, int]:
        """Videos per state right now (for pacing decisions)."""

    async def buffer_stats(self) -> tuple[int, int]:
        """(videos, bytes) of downloaded audio waiting for or in transcription."""

    async def publish(self, status: Mapping[str, Any]) -> None:
        """Publish this stage's live status (JSON-able); `ytpiped status` shows it under
        stages.<name> (e.g. download: phase, next_download_at; transcribe: slots)."""

    async def perf_samples(self) -> list[PerfSample]:
        """Stored transcription speed samples, oldest first."""

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        """Persist new transcription speed samples."""

    async def next_ready_at(self, only: str | None = None) -> float | None:
        """When the next row this stage could claim (of class `only`, store.model.CLAIM_ONLY)
        is due; None: none waits."""

    async def last_published(self) -> Mapping[str, Any] | None:
        """The status this stage published last, even by an earlier daemon (so state such
        as a running cooldown survives a restart)."""

    async def give_back_attempts(self, spent: Mapping[str, int], kinds: Sequence[str]) -> int:
        """Return attempts that failures of one of `kinds` spent (video id -> count) to the
        videos still resting after them (a failed one goes back to queued); -> videos
        changed. For failures found not to be the videos' fault (the download breaker)."""

    async def operator_request(self) -> Mapping[str, Any] | None:
        """The last `ytpiped pause|resume STAGE` for this stage ({"action", "at"}), or None."""

    async def update_shared(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Change state that hosts sharing the store share (e.g. a pacing group's), under
        the store's lock on `key`: `change(value or None)` -> the new value (it may run
        more than once)."""

    async def follows(self) -> Mapping[str, Any]:
        """Followed sources: daemon-state key `follow:<id>` -> its JSON (None: unfollowed)."""

    async def save_follow(self, key: str, value: Mapping[str, Any]) -> bool:
        """Store a followed source after a check; False (nothing stored) when it was
        unfollowed meanwhile."""


@runtime_checkable
class Stage(Protocol):
    """A pipeline stage, as the worker and the daemon drive it.

    - `concurrency`: videos this stage works on at once.
    - `start(ctx)`: once, at daemon start-up, before anything is claimed (the data dir is
      locked): load models, clean what a killed daemon left, restore published state.
    - `gate(ctx)`: awaited before each claim (raced against shutdown): returns when the
      stage may take its next video (pacing, cooldowns, pauses). A stage may also set an
      attribute `claim_only` (a class of store.model.CLAIM_ONLY, or None) that limits the
      claim that follows (the download gate: only other hosts' entries while YouTube waits).
    - `run(item, ctx)`: one video.
    - `close()`: once, at shutdown.
    """

    name: str
    concurrency: int

    async def start(self, ctx: Context) -> None: ...

    async def gate(self, ctx: Context) -> None: ...

    async def run(self, item: Item, ctx: Context) -> Outcome: ...

    async def close(self) -> None: ...


class StageBase:
    """Defaults for a stage's optional hooks: one video at a time, no start-up work, no
    gate, nothing to close."""

    name: str
    concurrency: int = 1

    async def start(self, ctx: Context) -> None:
        return None

    async def gate(self, ctx: Context) -> None:
        return None

    async def close(self) -> None:
        return None
