"""`SqliteStore`: the default `Store`, one SQLite file in the data dir (WAL).

A full disk pauses instead of failing: a call that fails because the database cannot
grow is kept and tried again until space returns, while reads go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ytpiped.errors import is_disk_full
from ytpiped.store.model import Event, LogEvent, PerfSample, VideoRow
from ytpiped.store.search import ClaimDoc, SearchDocs, SearchHit, SearchQuery
from ytpiped.store.sqlite import SqliteDB
from ytpiped.store.upkeep import ensure_sound

T = TypeVar("T")
#: below this much free space, any I/O error of SQLite is taken as a full disk
LOW_FREE_BYTES = 4 * 2**20
FULL_RETRY_S = 5.0


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return None


def is_store_full(exc: BaseException, path: Path) -> bool:
    """A write that failed because the disk (or quota) under the database is full:
    SQLITE_FULL, ENOSPC, or an I/O error of SQLite while almost no space is left (the WAL
    index cannot grow, the journal cannot be written)."""
    if is_disk_full(exc):
        return True
    if not isinstance(exc, sqlite3.Error):
        return False
    if getattr(
        exc, "sqlite_errorcode", None
    ) == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc):
        return True
    if isinstance(exc, sqlite3.OperationalError) and (
        "disk I/O error" in str(exc) or "unable to open" in str(exc)
    ):
        free = free_bytes(path)
        return free is not None and free < LOW_FREE_BYTES
    return False


class SqliteStore:
    """The `Store` protocol over SQLite: one connection (`SqliteDB`) on one dedicated thread,
    so SQLite never blocks the event loop.

    A full disk pauses instead of failing: a call that fails because the database cannot
    grow is kept and tried again every `retry_full_s`, or at once when another kept write
    went through since it failed, until space returns (or the store closes); so every
    claim, renewal and outcome waits while reads go on. `on_full(exc, first)` is called
    at every failed try (`first` for the first of a spell), and `on_writable` once when a
    write succeeds again."""

    def __init__(
        self,
        path: Path,
        now: float,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        retry_full_s: float = FULL_RETRY_S,
        on_full: Callable[[BaseException, bool], None] | None = None,
        on_writable: Callable[[], None] | None = None,
        opener: Callable[[Path, float], SqliteDB] | None = None,
    ) -> None:
        self._path = path
        self._now = now
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ytpiped-store")
        self._store: SqliteDB | None = None
        self._sleep = sleep or asyncio.sleep
        self.retry_full_s = retry_full_s
        self.on_full, self.on_writable = on_full, on_writable
        self._opener = opener or (lambda p, now: SqliteDB(p, now=now))
        self._closing = asyncio.Event()
        self.full_since: BaseException | None = None  # the error that paused writes
        self._waiting = 0  # calls kept until space returns
        self._space_back = asyncio.Event()  # set (and replaced) when a kept write goes through

    @property
    def opened(self) -> bool:
        return self._store is not None

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> None:
        """Open (creating the schema if needed) after a quick integrity check: a damaged
        file raises DatabaseCorrupt here, not in the middle of the work."""

        def _open() -> None:
            ensure_sound(self._path)
            self._store = self._opener(self._path, self._now)

        await self._retrying(lambda: asyncio.get_running_loop().run_in_executor(self._pool, _open))

    async def on_db(self, fn: Callable[[SqliteDB], T]) -> T:
        """Run `fn` on the SqliteDB on the store's thread (upkeep, tests)."""
        return await self._call(fn)

    async def _call(self, fn: Callable[[SqliteDB], T]) -> T:
        store = self._store
        if store is None:
            raise RuntimeError("SqliteStore is not open")
        return await self._retrying(
            lambda: asyncio.get_running_loop().run_in_executor(self._pool, fn, store)
        )

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        failed = False
        while True:
            space_back = self._space_back
            try:
                result = await call()
            except Exception as exc:
                if self._closing.is_set() or not is_store_full(exc, self._path):
                    if failed:
                        self._waiting -= 1
                    raise
                first, self.full_since = self.full_since is None, self.full_since or exc
                if not failed:
                    failed, self._waiting = True, self._waiting + 1
                if self.on_full is not None:
                    self.on_full(exc, first)
                await self._pause(space_back)
                continue
            # a read succeeds on a full disk too: only a kept write that went through (or
            # any call once no write waits) says that space is back
            if failed:
                self._waiting -= 1
            if self.full_since is not None and (failed or self._waiting == 0):
                self.full_since = None
                # the other kept calls try again now, not a retry_full_s later (also those
                # that failed before space came back but began their pause after)
                self._space_back.set()
                self._space_back = asyncio.Event()
                if self.on_writable is not None:
                    self.on_writable()
            return result

    async def _pause(self, space_back: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(w) for w in (
            self._sleep(self.retry_full_s), self._closing.wait(), space_back.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def begin_close(self) -> None:
        """From now on a write that finds the disk full fails at once instead of waiting
        (shutdown: rows still leased come back at the next start)."""
        self._closing.set()

    async def close(self) -> None:
        self.begin_close()
        store, self._store = self._store, None
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, store.close)
        self._pool.shutdown(wait=True)

    # ---------------------------------------------------------------- the Store protocol

    async def add_videos(
        self,
        videos: Iterable[tuple[str, str, str]],
        now: float,
        parent_id: str | None = None,
        priority: int = 0,
    ) -> tuple[int, int]:
        return await self._call(lambda db: db.add_videos(videos, now, parent_id, priority))

    async def claim(
        self, stage: str, owner: str, now: float, lease_s: float, limit: int = 1,
        *, only: str | None = None
    ) -> list[VideoRow]:
        return await self._call(lambda db: db.claim(stage, owner, now, lease_s, limit,
                                                    only=only))

    async def next_ready_at(self, stage: str, *, only: str | None = None) -> float | None:
        return await self._call(lambda db: db.next_ready_at(stage, only=only))

    async def renew(
        self, video_id: str, owner: str, state: str, until: float, *, token: int | None = None
    ) -> bool:
        return await self._call(lambda db: db.renew(video_id, owner, state, until, token=token))

    async def renew_many(
        self, leases: Iterable[tuple[str, str, int]], owner: str, until: float
    ) -> int:
        return await self._call(lambda db: db.renew_many(leases, owner, until))

    async def holds(self, video_id: str, state: str, token: int) -> bool:
        return await self._call(lambda db: db.holds(video_id, state, token))

    async def complete(
        self,
        video_id: str,
        owner: str,
        old: str,
        new: str,
        now: float,
        fields: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
        event: Event | None = None,
        token: int | None = None,
        search: SearchDocs | None = None,
    ) -> None:
        return await self._call(
            lambda db: db.complete(video_id, owner, old, new, now, fields, info, event, token,
                                   search)
        )

    async def release(
        self,
        video_id: str,
        owner: str | None,
        old: str,
        now: float,
        *,
        next_attempt_at: float = 0.0,
        spend_attempt: bool = False,
        kind: str | None = None,
        error: str | None = None,
        event: Event | None = None,
        token: int | None = None,
    ) -> None:
        return await self._call(
            lambda db: db.release(
                video_id,
                owner,
                old,
                now,
                next_attempt_at=next_attempt_at,
                spend_attempt=spend_attempt,
                kind=kind,
                error=error,
                event=event,
                token=token,
            )
        )

    async def fail(
        self,
        video_id: str,
        owner: str | None,
        old: str,
        now: float,
        *,
        kind: str,
        error: str,
        spend_attempt: bool = True,
        event: Event | None = None,
        token: int | None = None,
    ) -> None:
        return await self._call(
            lambda db: db.fail(
                video_id,
                owner,
                old,
                now,
                kind=kind,
                error=error,
                spend_attempt=spend_attempt,
                event=event,
                token=token,
            )
        )

    async def reap(
        self,
        now: float,
        *,
        owner_not: str | None = None,
        all_leases: bool = False,
        owner_prefix: str | None = None,
    ) -> int:
        return await self._call(
            lambda db: db.reap(
                now, owner_not=owner_not, all_leases=all_leases, owner_prefix=owner_prefix
            )
        )

    async def retry_failed(
        self,
        now: float,
        *,
        stage: str | None = None,
        kind: str | None = None,
        ids: Sequence[str] = (),
    ) -> int:
        return await self._call(lambda db: db.retry_failed(now, stage=stage, kind=kind, ids=ids))

    async def retry_skipped(self, now: float, *, ids: Sequence[str] = ()) -> int:
        return await self._call(lambda db: db.retry_skipped(now, ids=ids))

    async def give_back_attempts(
        self, spent: Mapping[str, int], kinds: Sequence[str], now: float, event: Event | None = None
    ) -> int:
        return await self._call(lambda db: db.give_back_attempts(spent, kinds, now, event))

    async def remine(self, reasons: Mapping[str, str], now: float) -> int:
        return await self._call(lambda db: db.remine(reasons, now))

    async def retranscribe(self, targets: Mapping[str, str], now: float,
                           model: str | None = None) -> int:
        return await self._call(lambda db: db.retranscribe(targets, now, model))

    async def get(self, video_id: str) -> VideoRow | None:
        return await self._call(lambda db: db.get(video_id))

    async def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]:
        return await self._call(lambda db: db.videos(state, limit))

    async def counts(self) -> dict[str, int]:
        return await self._call(lambda db: db.counts())

    async def counts_by_kind(self) -> dict[str, int]:
        return await self._call(lambda db: db.counts_by_kind())

    async def failures_by_kind(self) -> dict[str, int]:
        return await self._call(lambda db: db.failures_by_kind())

    async def recent_failures(self, limit: int = 5) -> list[VideoRow]:
        return await self._call(lambda db: db.recent_failures(limit))

    async def buffer_stats(self) -> tuple[int, int]:
        return await self._call(lambda db: db.buffer_stats())

    async def remaining_audio_s(self) -> dict[str, tuple[int, float]]:
        return await self._call(lambda db: db.remaining_audio_s())

    async def record_event(
        self,
        now: float,
        event: str,
        *,
        video_id: str | None = None,
        stage: str | None = None,
        kind: str | None = None,
        message: str | None = None,
    ) -> None:
        return await self._call(
            lambda db: db.record_event(
                now, event, video_id=video_id, stage=stage, kind=kind, message=message
            )
        )

    async def event_count(self, stage: str, event: str, since: float) -> int:
        return await self._call(lambda db: db.event_count(stage, event, since))

    async def event_counts_by_kind(self, event: str) -> dict[str, int]:
        return await self._call(lambda db: db.event_counts_by_kind(event))

    async def events_of(
        self, video_id: str
    ) -> list[tuple[float, str | None, str, str | None, str | None]]:
        return await self._call(lambda db: db.events_of(video_id))

    async def load_parts(self, video_id: str, kind: str) -> dict[int, Any]:
        return await self._call(lambda db: db.load_parts(video_id, kind))

    async def save_part(
        self, video_id: str, kind: str, idx: int, data: Any, now: float, *, token: int | None = None
    ) -> None:
        return await self._call(
            lambda db: db.save_part(video_id, kind, idx, data, now, token=token)
        )

    async def clear_parts(self, video_id: str, kind: str, *, token: int | None = None) -> None:
        return await self._call(lambda db: db.clear_parts(video_id, kind, token=token))

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        return await self._call(lambda db: db.add_perf_samples(samples))

    async def perf_samples(self, limit: int = 20000) -> list[PerfSample]:
        return await self._call(lambda db: db.perf_samples(limit))

    async def set_state(self, key: str, value: Any, now: float) -> None:
        return await self._call(lambda db: db.set_state(key, value, now))

    async def update_state(self, key: str, change: Callable[[Any], Any], now: float) -> Any:
        return await self._call(lambda db: db.update_state(key, change, now))

    async def get_state(self, key: str) -> tuple[Any, float] | None:
        return await self._call(lambda db: db.get_state(key))

    async def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]:
        return await self._call(lambda db: db.all_state(prefix))

    async def relative_audio_paths(self) -> int:
        return await self._call(lambda db: db.relative_audio_paths())

    async def check(self) -> str:
        return await self._call(lambda db: db.check())

    async def index_video(self, video_id: str, docs: SearchDocs) -> None:
        return await self._call(lambda db: db.index_video(video_id, docs))

    async def clear_search(self) -> None:
        return await self._call(lambda db: db.clear_search())

    async def search_counts(self) -> dict[str, int]:
        return await self._call(lambda db: db.search_counts())

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        return await self._call(lambda db: db.search(query))

    async def video_claims(self, video_id: str, limit: int = 5) -> tuple[int, list[ClaimDoc]]:
        return await self._call(lambda db: db.video_claims(video_id, limit))

    async def find_videos(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        error_kind: str | None = None,
        channel: str | None = None,
        limit: int | None = None,
    ) -> list[VideoRow]:
        return await self._call(lambda db: db.find_videos(
            state=state, kind=kind, error_kind=error_kind, channel=channel, limit=limit))

    async def event_log(
        self,
        *,
        after: int = 0,
        video_id: str | None = None,
        stage: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[LogEvent]:
        return await self._call(lambda db: db.event_log(
            after=after, video_id=video_id, stage=stage, kind=kind, limit=limit))
