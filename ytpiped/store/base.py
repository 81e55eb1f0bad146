"""The store interface: everything the workers, the daemon and status need from the
state database, as one async protocol. `SqliteStore` (the default, one file in the data
dir) and `ytpiped.testing.memory_store.MemoryStore` implement it; one contract test suite
(tests/contract) runs against every implementation.

Every state change is guarded by the row's current state (and, for a run, its fencing
token); a guard that matches nothing raises InvalidTransition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from ytpiped.store.model import Event, LogEvent, PerfSample, VideoRow
from ytpiped.store.search import ClaimDoc, SearchDocs, SearchHit, SearchQuery


class Store(Protocol):
    async def open(self) -> None:
        """Connect, creating or migrating the schema when needed."""

    def begin_close(self) -> None:
        """From now on, calls that would wait for the store to become writable again fail
        at once (shutdown)."""

    async def close(self) -> None:
        """Release connections and threads."""

    async def add_videos(
        self,
        videos: Iterable[tuple[str, str, str]],
        now: float,
        parent_id: str | None = None,
        priority: int = 0,
    ) -> tuple[int, int]:
        """Insert new rows (with a claim priority: higher first in every stage), ignoring
        ids already present -> (added, duplicate)."""

    async def claim(
        self, stage: str, owner: str, now: float, lease_s: float, limit: int = 1,
        *, only: str | None = None
    ) -> list[VideoRow]:
        """Move up to `limit` due rows of the stage's ready state to its running state,
        leased to `owner` until now + lease_s, each with a new fencing token (highest
        priority first, then oldest due, then first added); `only`: just rows of that
        class (model.CLAIM_ONLY: "other_hosts")."""

    async def next_ready_at(self, stage: str, *, only: str | None = None) -> float | None:
        """Earliest next_attempt_at among rows the stage could claim (of class `only`)."""

    async def renew(
        self, video_id: str, owner: str, state: str, until: float, *, token: int | None = None
    ) -> bool:
        """Extend a lease; False when the row is no longer this run's."""

    async def renew_many(
        self, leases: Iterable[tuple[str, str, int]], owner: str, until: float
    ) -> int:
        """Extend the leases (video_id, state, token) of live runs in one transaction."""

    async def holds(self, video_id: str, state: str, token: int) -> bool:
        """True while the run holding `token` still owns the row."""

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
        """Finish a stage: move to `new`, store outcome fields, merge `info`, reset attempts;
        in the same transaction, replace what the search indexes hold of the video with
        `search` (its metadata's document, a transcript's passages, an evaluation's
        claims)."""

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
        """Return an in-progress row to its previous resting state."""

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
        """Move an in-progress row to failed with its stage, kind and error."""

    async def reap(
        self,
        now: float,
        *,
        owner_not: str | None = None,
        all_leases: bool = False,
        owner_prefix: str | None = None,
    ) -> int:
        """Return expired leases (or, with all_leases, every lease not of `owner_not`) to
        their resting state, spending no attempt; with `owner_prefix`, only leases whose
        owner starts with it (one host's, "HOST:", when several share the store)."""

    async def retry_failed(
        self,
        now: float,
        *,
        stage: str | None = None,
        kind: str | None = None,
        ids: Sequence[str] = (),
    ) -> int:
        """Send failed videos back to the resting state before their failed stage."""

    async def retry_skipped(self, now: float, *, ids: Sequence[str] = ()) -> int:
        """Queue skipped videos (those of `ids`, or all) anyway: attempts reset, the skip
        reason dropped and `info.unfiltered` set, so no filter skips them again."""

    async def give_back_attempts(
        self, spent: Mapping[str, int], kinds: Sequence[str], now: float, event: Event | None = None
    ) -> int:
        """Return attempts that failures of `kinds` spent (video id -> count)."""

    async def remine(self, reasons: Mapping[str, str], now: float) -> int:
        """Send done videos back to transcribed, recording each reason."""

    async def retranscribe(self, targets: Mapping[str, str], now: float,
                           model: str | None = None) -> int:
        """Send done videos back through transcription: video id -> the state it re-enters
        (`analyzed` with its audio kept, `queued` to download it again); clear every part
        of the old transcript and what was mined from it; set `info.retranscribe` =
        {"model": model (absent: the configured one), "at": now}; record a `retranscribe`
        event. Rows no longer done are left alone; -> rows moved."""

    async def get(self, video_id: str) -> VideoRow | None:
        """One video, or None."""

    async def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]:
        """Videos (of one state), oldest first."""

    async def counts(self) -> dict[str, int]:
        """Videos per state (every state present)."""

    async def counts_by_kind(self) -> dict[str, int]:
        """Videos per row kind (video, playlist, ...)."""

    async def failures_by_kind(self) -> dict[str, int]:
        """Failed videos per error kind."""

    async def recent_failures(self, limit: int = 5) -> list[VideoRow]:
        """The last failed videos, newest first."""

    async def buffer_stats(self) -> tuple[int, int]:
        """(videos, bytes) of audio waiting for or in transcription."""

    async def remaining_audio_s(self) -> dict[str, tuple[int, float]]:
        """state -> (videos, known audio seconds)."""

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
        """Append to the events log."""

    async def event_count(self, stage: str, event: str, since: float) -> int:
        """Events of a stage since a time."""

    async def event_counts_by_kind(self, event: str) -> dict[str, int]:
        """Events of one name per kind."""

    async def events_of(
        self, video_id: str
    ) -> list[tuple[float, str | None, str, str | None, str | None]]:
        """One video's events (at, stage, event, kind, message), oldest first."""

    async def load_parts(self, video_id: str, kind: str) -> dict[int, Any]:
        """idx -> data of every stored part of this kind."""

    async def save_part(
        self, video_id: str, kind: str, idx: int, data: Any, now: float, *, token: int | None = None
    ) -> None:
        """Record one finished part (fenced by `token`)."""

    async def clear_parts(self, video_id: str, kind: str, *, token: int | None = None) -> None:
        """Forget all parts of this kind (fenced by `token`)."""

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        """Store measured transcription speeds."""

    async def perf_samples(self, limit: int = 20000) -> list[PerfSample]:
        """The newest `limit` speed samples, oldest first."""

    async def set_state(self, key: str, value: Any, now: float) -> None:
        """Set a daemon-state entry (JSON-able value)."""

    async def get_state(self, key: str) -> tuple[Any, float] | None:
        """(value, updated_at) of a daemon-state entry."""

    async def update_state(self, key: str, change: Callable[[Any], Any], now: float) -> Any:
        """Read, change and write one daemon-state entry under a lock on it, so that hosts
        sharing the store take turns: `change(value or None)` returns the new value (it may
        run more than once, so it must only depend on its argument); -> the new value."""

    async def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]:
        """Every daemon-state entry whose key starts with `prefix`."""

    async def relative_audio_paths(self) -> int:
        """Make stored absolute audio paths relative to the data dir (`audio/<file>`), so
        a moved data dir keeps working; -> rows changed."""

    async def check(self) -> str:
        """A quick integrity check: "ok" or the problems found."""

    # search and the listings (`ytpiped search`, `reindex`, `ls`, `show`, `logs`)

    async def index_video(self, video_id: str, docs: SearchDocs) -> None:
        """Replace what the search indexes hold of one video (the kinds `docs` gives; an
        empty `docs.video` removes its document from the video index)."""

    async def clear_search(self) -> None:
        """Empty the search indexes."""

    async def search_counts(self) -> dict[str, int]:
        """{"claims", "passages", "metadata", "videos"}: what the search indexes hold
        (claims, passages, video documents; the videos any of them comes from)."""

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        """The best `query.limit` matches in one index (claims, transcripts or videos),
        best first, each with its video's title, channel, upload date and URL; `channel`
        and `since` filter by the video's row."""

    async def video_claims(self, video_id: str, limit: int = 5) -> tuple[int, list[ClaimDoc]]:
        """(claims indexed for the video, the first `limit` by rank)."""

    async def find_videos(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        error_kind: str | None = None,
        channel: str | None = None,
        limit: int | None = None,
    ) -> list[VideoRow]:
        """Videos matching every filter given (channel without case), in the order they
        were added."""

    async def event_log(
        self,
        *,
        after: int = 0,
        video_id: str | None = None,
        stage: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[LogEvent]:
        """The newest `limit` events with an id above `after` that match, oldest first."""
