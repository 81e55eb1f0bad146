"""A synchronous face of any async `Store`, for the CLI commands and `status` that use
`SqliteDB` directly with SQLite: with `store.url = "postgresql://…"` they get a
`BlockingStore` over a `PostgresStore` instead, with the same methods.

It runs the store on an event loop of its own (`asyncio.Runner`), or, inside the daemon
(the control API's status thread), on the daemon's loop with `on_loop`, so a status read
shares the daemon's connection pool instead of connecting again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from ytpiped.store.base import Store
from ytpiped.store.model import LogEvent, VideoRow
from ytpiped.store.search import ClaimDoc, SearchDocs, SearchHit, SearchQuery

T = TypeVar("T")


class StatusReader(Protocol):
    """The reads `status` makes (SqliteDB and BlockingStore have them)."""

    def counts(self) -> dict[str, int]: ...
    def counts_by_kind(self) -> dict[str, int]: ...
    def failures_by_kind(self) -> dict[str, int]: ...
    def recent_failures(self, limit: int = 5) -> list[VideoRow]: ...
    def event_count(self, stage: str, event: str, since: float) -> int: ...
    def event_counts_by_kind(self, event: str) -> dict[str, int]: ...
    def get_state(self, key: str) -> tuple[Any, float] | None: ...
    def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]: ...
    def close(self) -> None: ...


class SyncDB(StatusReader, Protocol):
    """What the CLI commands use of a store, synchronously."""

    def add_videos(self, videos: Iterable[tuple[str, str, str]], now: float,
                   parent_id: str | None = None, priority: int = 0) -> tuple[int, int]: ...
    def retry_failed(self, now: float, *, stage: str | None = None, kind: str | None = None,
                     ids: Sequence[str] = ()) -> int: ...
    def retry_skipped(self, now: float, *, ids: Sequence[str] = ()) -> int: ...
    def remine(self, reasons: Mapping[str, str], now: float) -> int: ...
    def retranscribe(self, targets: Mapping[str, str], now: float,
                     model: str | None = None) -> int: ...
    def get(self, video_id: str) -> VideoRow | None: ...
    def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]: ...
    def set_state(self, key: str, value: Any, now: float) -> None: ...
    def check(self) -> str: ...
    def events_of(self, video_id: str) -> list[tuple[float, str | None, str, str | None,
                                                    str | None]]: ...
    def index_video(self, video_id: str, docs: SearchDocs) -> None: ...
    def clear_search(self) -> None: ...
    def search_counts(self) -> dict[str, int]: ...
    def search(self, query: SearchQuery) -> list[SearchHit]: ...
    def video_claims(self, video_id: str, limit: int = 5) -> tuple[int, list[ClaimDoc]]: ...
    def find_videos(self, *, state: str | None = None, kind: str | None = None,
                    error_kind: str | None = None, channel: str | None = None,
                    limit: int | None = None) -> list[VideoRow]: ...
    def event_log(self, *, after: int = 0, video_id: str | None = None,
                  stage: str | None = None, kind: str | None = None,
                  limit: int = 100) -> list[LogEvent]: ...


class BlockingStore:
    """Blocking calls into an async Store. Open it with `BlockingStore.opened(store)` (its
    own loop) or `BlockingStore.on_loop(store, loop)` (a running loop in another thread)."""

    def __init__(self, store: Store, run: Callable[[Coroutine[Any, Any, Any]], Any],
                 close: Callable[[], None]) -> None:
        self.store = store
        self._run = run
        self._close = close

    @classmethod
    def opened(cls, store: Store) -> BlockingStore:
        """Open `store` on a private event loop; close() closes both."""
        runner = asyncio.Runner()
        try:
            runner.run(store.open())
        except BaseException:
            runner.close()
            raise

        def close() -> None:
            try:
                runner.run(store.close())
            finally:
                runner.close()

        return cls(store, runner.run, close)

    @classmethod
    def on_loop(cls, store: Store, loop: asyncio.AbstractEventLoop,
                timeout_s: float = 30.0) -> BlockingStore:
        """Calls from a thread into an open `store` that lives on `loop` (close() leaves
        the store open: its owner closes it)."""

        def run(coro: Coroutine[Any, Any, Any]) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout_s)

        return cls(store, run, lambda: None)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        result: T = self._run(coro)
        return result

    def close(self) -> None:
        self._close()

    # the methods of SyncDB, each one call into the store

    def counts(self) -> dict[str, int]:
        return self.call(self.store.counts())

    def counts_by_kind(self) -> dict[str, int]:
        return self.call(self.store.counts_by_kind())

    def failures_by_kind(self) -> dict[str, int]:
        return self.call(self.store.failures_by_kind())

    def recent_failures(self, limit: int = 5) -> list[VideoRow]:
        return self.call(self.store.recent_failures(limit))

    def event_count(self, stage: str, event: str, since: float) -> int:
        return self.call(self.store.event_count(stage, event, since))

    def event_counts_by_kind(self, event: str) -> dict[str, int]:
        return self.call(self.store.event_counts_by_kind(event))

    def get_state(self, key: str) -> tuple[Any, float] | None:
        return self.call(self.store.get_state(key))

    def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]:
        return self.call(self.store.all_state(prefix))

    def add_videos(self, videos: Iterable[tuple[str, str, str]], now: float,
                   parent_id: str | None = None, priority: int = 0) -> tuple[int, int]:
        return self.call(self.store.add_videos(videos, now, parent_id, priority))

    def retry_failed(self, now: float, *, stage: str | None = None, kind: str | None = None,
                     ids: Sequence[str] = ()) -> int:
        return self.call(self.store.retry_failed(now, stage=stage, kind=kind, ids=ids))

    def retry_skipped(self, now: float, *, ids: Sequence[str] = ()) -> int:
        return self.call(self.store.retry_skipped(now, ids=ids))

    def remine(self, reasons: Mapping[str, str], now: float) -> int:
        return self.call(self.store.remine(reasons, now))

    def retranscribe(self, targets: Mapping[str, str], now: float,
                     model: str | None = None) -> int:
        return self.call(self.store.retranscribe(targets, now, model))

    def get(self, video_id: str) -> VideoRow | None:
        return self.call(self.store.get(video_id))

    def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]:
        return self.call(self.store.videos(state, limit))

    def events_of(self, video_id: str) -> list[tuple[float, str | None, str, str | None,
                                                    str | None]]:
        return self.call(self.store.events_of(video_id))

    def set_state(self, key: str, value: Any, now: float) -> None:
        self.call(self.store.set_state(key, value, now))

    def check(self) -> str:
        return self.call(self.store.check())

    def index_video(self, video_id: str, docs: SearchDocs) -> None:
        self.call(self.store.index_video(video_id, docs))

    def clear_search(self) -> None:
        self.call(self.store.clear_search())

    def search_counts(self) -> dict[str, int]:
        return self.call(self.store.search_counts())

    def search(self, query: SearchQuery) -> list[SearchHit]:
        return self.call(self.store.search(query))

    def video_claims(self, video_id: str, limit: int = 5) -> tuple[int, list[ClaimDoc]]:
        return self.call(self.store.video_claims(video_id, limit))

    def find_videos(self, *, state: str | None = None, kind: str | None = None,
                    error_kind: str | None = None, channel: str | None = None,
                    limit: int | None = None) -> list[VideoRow]:
        return self.call(self.store.find_videos(state=state, kind=kind, error_kind=error_kind,
                                                channel=channel, limit=limit))

    def event_log(self, *, after: int = 0, video_id: str | None = None,
                  stage: str | None = None, kind: str | None = None,
                  limit: int = 100) -> list[LogEvent]:
        return self.call(self.store.event_log(after=after, video_id=video_id, stage=stage,
                                              kind=kind, limit=limit))
