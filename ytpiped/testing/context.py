"""An in-memory stage Context for tests of single stages (no store, no worker)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from ytpiped.clock import Clock, SystemClock
from ytpiped.config import Settings
from ytpiped.scheduling.tracker import PerfSample
from ytpiped.states import State


class MemoryParts:
    def __init__(self) -> None:
        self.data: dict[str, dict[int, Any]] = {}
        self.saves = 0

    async def load(self, kind: str) -> dict[int, Any]:
        return dict(self.data.get(kind, {}))

    async def save(self, kind: str, idx: int, data: Any) -> None:
        self.saves += 1
        self.data.setdefault(kind, {})[idx] = data

    async def clear(self, kind: str) -> None:
        self.data.pop(kind, None)


class FakeContext:
    def __init__(self, settings: Settings, clock: Clock | None = None,
                 counts: Mapping[str, int] | None = None, buffer: tuple[int, int] = (0, 0),
                 owner: str = "testhost:1", shared: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.log: structlog.typing.FilteringBoundLogger = structlog.get_logger("test")
        self.parts = MemoryParts()
        self.added: list[tuple[str, str]] = []
        self.events: list[tuple[str, str | None, str | None]] = []
        self.published: list[dict[str, Any]] = []
        self._counts = dict(counts or {s.value: 0 for s in State})
        self.buffer = buffer
        self.samples: list[PerfSample] = []
        self.given_back: list[tuple[dict[str, int], list[str]]] = []
        self.request: dict[str, Any] | None = None  # what `ytpiped pause|resume` wrote
        self.owner = owner
        # state shared by the hosts of one store (pass one dict to several contexts)
        self.shared: dict[str, Any] = {} if shared is None else shared
        self.followed: dict[str, Any] = {}  # follow:<id> -> its JSON (None: unfollowed)
        # only -> when the next row of that class is due (None: any row; absent: none waits)
        self.ready: dict[str | None, float] = {}

    @property
    def data_dir(self) -> Path:
        return self.settings.data_path

    async def add_videos(self, urls: Sequence[str], parent_id: str) -> tuple[int, int]:
        known = {u for u, _ in self.added}
        new = [u for u in dict.fromkeys(urls) if u not in known]
        self.added += [(u, parent_id) for u in new]
        return len(new), len(urls) - len(new)

    async def record_event(self, event: str, *, kind: str | None = None,
                           message: str | None = None) -> None:
        self.events.append((event, kind, message))

    async def counts(self) -> Mapping[str, int]:
        return dict(self._counts)

    async def buffer_stats(self) -> tuple[int, int]:
        return self.buffer

    async def publish(self, status: Mapping[str, Any]) -> None:
        self.published.append(dict(status))

    async def perf_samples(self) -> list[PerfSample]:
        return list(self.samples)

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        self.samples.extend(samples)

    async def next_ready_at(self, only: str | None = None) -> float | None:
        return self.ready.get(only)

    async def last_published(self) -> Mapping[str, Any] | None:
        return self.published[-1] if self.published else None

    async def give_back_attempts(self, spent: Mapping[str, int], kinds: Sequence[str]) -> int:
        self.given_back.append((dict(spent), list(kinds)))
        return len(spent)

    async def operator_request(self) -> Mapping[str, Any] | None:
        return self.request

    async def update_shared(self, key: str, change: Callable[[Any], Any]) -> Any:
        # followed sources are daemon state too (a store keeps both in one table)
        table = self.followed if key.startswith("follow:") else self.shared
        table[key] = change(copy.deepcopy(table.get(key)))
        return table[key]

    async def follows(self) -> Mapping[str, Any]:
        return dict(self.followed)

    async def save_follow(self, key: str, value: Mapping[str, Any]) -> bool:
        if self.followed.get(key) is None:
            return False
        self.followed[key] = dict(value)
        return True
