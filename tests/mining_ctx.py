"""A Context for stage tests of mining/evaluation: parts, events and status in dicts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from ytpiped.clock import Clock
from ytpiped.config import Settings
from ytpiped.stages.base import Item


class DictParts:
    def __init__(self, store: dict[tuple[str, int], Any]) -> None:
        self.store = store
        self.saves: list[tuple[str, int]] = []

    async def load(self, kind: str) -> dict[int, Any]:
        # round-trip through JSON as the SQLite store does
        return {i: json.loads(json.dumps(v)) for (k, i), v in self.store.items() if k == kind}

    async def save(self, kind: str, idx: int, data: Any) -> None:
        self.store[(kind, idx)] = json.loads(json.dumps(data))
        self.saves.append((kind, idx))

    async def clear(self, kind: str) -> None:
        for key in [k for k in self.store if k[0] == kind]:
            del self.store[key]


class DictContext:
    def __init__(self, settings: Settings, clock: Clock, data_dir: Path,
                 parts: dict[tuple[str, int], Any] | None = None) -> None:
        self._settings, self._clock, self._data_dir = settings, clock, data_dir
        self._parts = DictParts(parts if parts is not None else {})
        self.events: list[tuple[str, str | None, str | None]] = []
        self.published: list[dict[str, Any]] = []

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        return structlog.get_logger("test")  # type: ignore[no-any-return]

    @property
    def parts(self) -> DictParts:
        return self._parts

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    async def add_videos(self, urls: Sequence[str], parent_id: str) -> tuple[int, int]:
        return 0, 0

    async def record_event(self, event: str, *, kind: str | None = None,
                           message: str | None = None) -> None:
        self.events.append((event, kind, message))

    async def counts(self) -> Mapping[str, int]:
        return {}

    async def buffer_stats(self) -> tuple[int, int]:
        return 0, 0

    async def publish(self, status: Mapping[str, Any]) -> None:
        self.published.append(dict(status))

    async def last_published(self) -> Mapping[str, Any] | None:
        return self.published[-1] if self.published else None


def write_transcript(data_dir: Path, video_id: str, texts: Sequence[str],
                     seg_s: float = 5.0) -> list[dict[str, Any]]:
    segs = [{"start": i * seg_s, "end": (i + 1) * seg_s, "text": t} for i, t in enumerate(texts)]
    d = data_dir / "transcripts"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{video_id}.json").write_text(json.dumps({
        "video_id": video_id, "language": "en", "duration_s": len(texts) * seg_s,
        "model": "tiny.en", "device": "cpu", "segments": segs}))
    return segs


def item(video_id: str, title: str = "A talk", channel: str = "A channel",
         attempts: int = 0) -> Item:
    return Item(id=video_id, url=f"https://www.youtube.com/watch?v={video_id}", kind="video",
                state="mining", attempts=attempts, title=title, channel=channel)
