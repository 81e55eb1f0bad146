"""MemoryStore: the `Store` protocol in memory, for unit tests of the worker and the
daemon on a fake clock (no thread, no file). It keeps the same guards as SQLite: every
state change checks the transition table, the row's state and, for a run, its fencing
token; the contract suite (tests/contract) runs the same tests against both."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ytpiped.errors import InvalidTransition
from ytpiped.states import IN_PROGRESS, PREVIOUS, STAGE_OF, STAGES, State, check
from ytpiped.store.model import (
    BUFFER_STATES,
    UNFILTERED_PATCH,
    Event,
    LogEvent,
    PerfSample,
    VideoRow,
    claim_only,
    is_other_host,
    outcome_fields,
    retranscribe_message,
)
from ytpiped.store.search import (
    VIDEO_FIELDS,
    VIDEO_WEIGHTS,
    ClaimDoc,
    Matcher,
    Passage,
    SearchDocs,
    SearchHit,
    SearchQuery,
    VideoDoc,
    doc_words,
)


def json_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 merge patch, as SQLite's json_patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = json_patch(out.get(key), value)
    return out


class MemoryStore:
    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._rowid = itertools.count(1)
        self._events: list[tuple[float, str | None, str | None, str, str | None,
                                 str | None]] = []
        self._parts: dict[tuple[str, str], dict[int, Any]] = {}
        self._samples: list[PerfSample] = []
        self._state: dict[str, tuple[Any, float]] = {}
        self._passages: dict[str, tuple[Passage, ...]] = {}
        self._claims: dict[str, tuple[ClaimDoc, ...]] = {}
        self._videos: dict[str, VideoDoc] = {}
        self.closed = False

    async def open(self) -> None:
        return None

    def begin_close(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _view(r: Mapping[str, Any]) -> VideoRow:
        fields = {f.name: copy.deepcopy(r[f.name]) for f in dataclasses.fields(VideoRow)}
        return VideoRow(**fields)

    def _holds(self, r: Mapping[str, Any], state: str, owner: str | None,
               token: int | None) -> bool:
        return (r["state"] == state and (owner is None or r["lease_owner"] == owner)
                and (token is None or r["lease_token"] == token))

    def _move(self, video_id: str, owner: str | None, old: str, new: str, now: float,
              changes: Mapping[str, Any], event: Event | None, token: int | None) -> None:
        check(old, new)
        r = self._rows.get(video_id)
        if r is None or not self._holds(r, old, owner, token):
            raise InvalidTransition(f"video {video_id}: {old} -> {new} matched no row "
                                    f"(state or lease changed underneath)",
                                    lease_lost=token is not None)
        r.update(changes)
        r["state"], r["updated_at"] = str(new), now
        if event is not None:
            self._event(now, event.event, video_id, event.stage, event.kind, event.message)

    def _event(self, now: float, event: str, video_id: str | None, stage: str | None,
               kind: str | None, message: str | None) -> None:
        self._events.append((now, video_id, stage, event, kind, message))

    def _live_run(self, video_id: str, token: int | None) -> bool:
        r = self._rows.get(video_id)
        return token is None or (r is not None and r["lease_token"] == token
                                 and r["lease_owner"] is not None)

    # ------------------------------------------------------------------ adding and claims

    async def add_videos(self, videos: Iterable[tuple[str, str, str]], now: float,
                         parent_id: str | None = None, priority: int = 0) -> tuple[int, int]:
        added = dup = 0
        for vid, url, kind in sorted(videos):
            if vid in self._rows:
                dup += 1
                row = self._rows[vid]
                row["priority"] = max(row["priority"], priority) if priority else row["priority"]
                continue
            self._rows[vid] = {
                "id": vid, "url": url, "kind": kind, "parent_id": parent_id, "title": None,
                "channel": None, "upload_date": None, "duration_s": None, "size_bytes": None,
                "audio_path": None, "state": State.QUEUED.value, "attempts": 0,
                "next_attempt_at": 0.0, "lease_owner": None, "lease_until": None,
                "failed_stage": None, "error_kind": None, "error": None, "info": {},
                "created_at": now, "updated_at": now, "lease_token": 0, "priority": priority,
                "_rowid": next(self._rowid)}
            added += 1
        return added, dup

    async def claim(self, stage: str, owner: str, now: float, lease_s: float,
                    limit: int = 1, *, only: str | None = None) -> list[VideoRow]:
        st = STAGES[stage]
        check(st.ready, st.running)
        claim_only(only)  # an unknown class is an error, as in SQL
        due = sorted((r for r in self._rows.values()
                      if r["state"] == st.ready and r["next_attempt_at"] <= now
                      and self._only(r, only)),
                     key=lambda r: (-r["priority"], r["next_attempt_at"], r["_rowid"]))[:limit]
        for r in due:
            r.update(state=st.running.value, lease_owner=owner, lease_until=now + lease_s,
                     updated_at=now, lease_token=r["lease_token"] + 1)
        return [self._view(r) for r in due]

    async def next_ready_at(self, stage: str, *, only: str | None = None) -> float | None:
        due = [r["next_attempt_at"] for r in self._rows.values()
               if r["state"] == STAGES[stage].ready and self._only(r, only)]
        return float(min(due)) if due else None

    @staticmethod
    def _only(r: dict[str, Any], only: str | None) -> bool:
        return only is None or is_other_host(r["kind"])

    async def renew(self, video_id: str, owner: str, state: str, until: float, *,
                    token: int | None = None) -> bool:
        r = self._rows.get(video_id)
        if r is None or not self._holds(r, state, owner, token):
            return False
        r["lease_until"] = until
        return True

    async def renew_many(self, leases: Iterable[tuple[str, str, int]], owner: str,
                         until: float) -> int:
        return sum([await self.renew(v, owner, s, until, token=t) for v, s, t in leases])

    async def holds(self, video_id: str, state: str, token: int) -> bool:
        r = self._rows.get(video_id)
        return r is not None and r["state"] == state and r["lease_token"] == token

    # ------------------------------------------------------------------ outcomes

    async def complete(self, video_id: str, owner: str, old: str, new: str, now: float,
                       fields: Mapping[str, Any] | None = None,
                       info: Mapping[str, Any] | None = None, event: Event | None = None,
                       token: int | None = None, search: SearchDocs | None = None) -> None:
        fields = outcome_fields(fields)
        r = self._rows.get(video_id)
        changes: dict[str, Any] = {"lease_owner": None, "lease_until": None, "attempts": 0,
                                   "next_attempt_at": 0.0, "error_kind": None, "error": None,
                                   "failed_stage": None, **fields}
        if info and r is not None:
            changes["info"] = json_patch(r["info"], dict(info))
        self._move(video_id, owner, old, new, now, changes, event, token)
        if search is not None:
            await self.index_video(video_id, search)

    async def release(self, video_id: str, owner: str | None, old: str, now: float, *,
                      next_attempt_at: float = 0.0, spend_attempt: bool = False,
                      kind: str | None = None, error: str | None = None,
                      event: Event | None = None, token: int | None = None) -> None:
        r = self._rows.get(video_id)
        changes: dict[str, Any] = {"lease_owner": None, "lease_until": None,
                                   "next_attempt_at": next_attempt_at}
        if spend_attempt and r is not None:
            changes["attempts"] = r["attempts"] + 1
        if kind is not None:
            changes.update(error_kind=kind, error=error)
        self._move(video_id, owner, old, PREVIOUS[State(old)], now, changes, event, token)

    async def fail(self, video_id: str, owner: str | None, old: str, now: float, *, kind: str,
                   error: str, spend_attempt: bool = True, event: Event | None = None,
                   token: int | None = None) -> None:
        r = self._rows.get(video_id)
        changes: dict[str, Any] = {"lease_owner": None, "lease_until": None,
                                   "failed_stage": STAGE_OF[State(old)], "error_kind": kind,
                                   "error": error}
        if spend_attempt and r is not None:
            changes["attempts"] = r["attempts"] + 1
        self._move(video_id, owner, old, State.FAILED, now, changes, event, token)

    async def reap(self, now: float, *, owner_not: str | None = None,
                   all_leases: bool = False, owner_prefix: str | None = None) -> int:
        n = 0
        running = {s.value for s in IN_PROGRESS}
        for r in self._rows.values():
            if r["state"] not in running:
                continue
            if not all_leases and not (r["lease_until"] is not None and r["lease_until"] < now):
                continue
            if owner_not is not None and r["lease_owner"] == owner_not:
                continue
            if owner_prefix is not None and not str(r["lease_owner"] or "").startswith(
                    owner_prefix):
                continue
            r.update(state=PREVIOUS[State(r["state"])].value, lease_owner=None,
                     lease_until=None, updated_at=now)
            n += 1
        return n

    # ------------------------------------------------------------------ operator actions

    async def retry_failed(self, now: float, *, stage: str | None = None,
                           kind: str | None = None, ids: Sequence[str] = ()) -> int:
        n = 0
        for r in self._rows.values():
            if r["state"] != State.FAILED or (stage and r["failed_stage"] != stage) or \
                    (kind and r["error_kind"] != kind) or (ids and r["id"] not in ids):
                continue
            ready = STAGES[r["failed_stage"]].ready if r["failed_stage"] in STAGES else \
                State.QUEUED
            check(State.FAILED, ready)
            r.update(state=ready.value, attempts=0, next_attempt_at=0.0, failed_stage=None,
                     error_kind=None, error=None, updated_at=now)
            n += 1
        return n

    async def retry_skipped(self, now: float, *, ids: Sequence[str] = ()) -> int:
        n = 0
        for r in self._rows.values():
            if r["state"] != State.SKIPPED or (ids and r["id"] not in ids):
                continue
            check(State.SKIPPED, State.QUEUED)
            r.update(state=State.QUEUED.value, attempts=0, next_attempt_at=0.0, updated_at=now,
                     info=json_patch(r["info"], UNFILTERED_PATCH))
            n += 1
        return n

    async def give_back_attempts(self, spent: Mapping[str, int], kinds: Sequence[str],
                                 now: float, event: Event | None = None) -> int:
        if not spent or not kinds:
            return 0
        check(State.FAILED, State.QUEUED)
        changed = 0
        for video_id, count in spent.items():
            r = self._rows.get(video_id)
            if r is None or r["error_kind"] not in kinds or not (
                    r["state"] == State.QUEUED or (r["state"] == State.FAILED and
                                                   r["failed_stage"] == "download")):
                continue
            if r["state"] == State.FAILED:
                r["next_attempt_at"] = 0.0
            r.update(attempts=max(0, r["attempts"] - int(count)), updated_at=now,
                     state=State.QUEUED.value, failed_stage=None)
            changed += 1
            if event is not None:
                self._event(now, event.event, video_id, event.stage, event.kind, event.message)
        return changed

    async def remine(self, reasons: Mapping[str, str], now: float) -> int:
        check(State.DONE, State.TRANSCRIBED)
        moved = 0
        for video_id, reason in reasons.items():
            r = self._rows.get(video_id)
            if r is None or r["state"] != State.DONE:
                continue
            r.update(state=State.TRANSCRIBED.value, attempts=0, next_attempt_at=0.0,
                     updated_at=now)
            moved += 1
            self._event(now, "remine", video_id, "mine", None, reason)
        return moved

    async def retranscribe(self, targets: Mapping[str, str], now: float,
                           model: str | None = None) -> int:
        for target in set(targets.values()):
            check(State.DONE, target)
        moved = 0
        for video_id, target in targets.items():
            r = self._rows.get(video_id)
            if r is None or r["state"] != State.DONE:
                continue
            r.update(state=target, attempts=0, next_attempt_at=0.0, updated_at=now,
                     info=json_patch(r["info"], {"retranscribe": {"model": model, "at": now}}))
            for key in [k for k in self._parts if k[0] == video_id]:
                del self._parts[key]
            moved += 1
            self._event(now, "retranscribe", video_id, "transcribe", None,
                        retranscribe_message(target, model))
        return moved

    async def relative_audio_paths(self) -> int:
        n = 0
        for r in self._rows.values():
            if r["audio_path"] and str(r["audio_path"]).startswith("/"):
                r["audio_path"] = f"audio/{str(r['audio_path']).rsplit('/', 1)[-1]}"
                n += 1
        return n

    async def check(self) -> str:
        return "ok"

    # ------------------------------------------------------------------ reads

    def _ordered(self) -> list[dict[str, Any]]:
        return sorted(self._rows.values(), key=lambda r: r["_rowid"])

    async def get(self, video_id: str) -> VideoRow | None:
        r = self._rows.get(video_id)
        return None if r is None else self._view(r)

    async def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]:
        return [self._view(r) for r in self._ordered()
                if state is None or r["state"] == state][:limit]

    async def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in State}
        for r in self._rows.values():
            out[r["state"]] += 1
        return out

    async def counts_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self._rows.values():
            out[r["kind"]] = out.get(r["kind"], 0) + 1
        return out

    async def failures_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self._rows.values():
            if r["state"] == State.FAILED:
                k = r["error_kind"] or "error"
                out[k] = out.get(k, 0) + 1
        return out

    async def recent_failures(self, limit: int = 5) -> list[VideoRow]:
        failed = [r for r in self._ordered() if r["state"] == State.FAILED]
        failed.sort(key=lambda r: -r["updated_at"])
        return [self._view(r) for r in failed[:limit]]

    async def buffer_stats(self) -> tuple[int, int]:
        rows = [r for r in self._rows.values() if r["state"] in {s.value for s in BUFFER_STATES}]
        return len(rows), sum(int(r["size_bytes"] or 0) for r in rows)

    async def remaining_audio_s(self) -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for r in self._rows.values():
            n, d = out.get(r["state"], (0, 0.0))
            out[r["state"]] = (n + 1, d + float(r["duration_s"] or 0.0))
        return out

    # ------------------------------------------------------------------ events

    async def record_event(self, now: float, event: str, *, video_id: str | None = None,
                           stage: str | None = None, kind: str | None = None,
                           message: str | None = None) -> None:
        self._event(now, event, video_id, stage, kind, message)

    async def event_count(self, stage: str, event: str, since: float) -> int:
        return sum(1 for at, _, st, ev, _, _ in self._events
                   if st == stage and ev == event and at >= since)

    async def event_counts_by_kind(self, event: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, _, ev, kind, _ in self._events:
            if ev == event:
                out[kind or "error"] = out.get(kind or "error", 0) + 1
        return out

    async def events_of(self, video_id: str) -> list[tuple[float, str | None, str, str | None,
                                                          str | None]]:
        return [(at, st, ev, kind, msg) for at, vid, st, ev, kind, msg in self._events
                if vid == video_id]

    # ------------------------------------------------------------------ parts

    async def load_parts(self, video_id: str, kind: str) -> dict[int, Any]:
        return {i: copy.deepcopy(d) for i, d in
                sorted(self._parts.get((video_id, kind), {}).items())}

    async def save_part(self, video_id: str, kind: str, idx: int, data: Any, now: float, *,
                        token: int | None = None) -> None:
        if not self._live_run(video_id, token):
            raise InvalidTransition(f"video {video_id}: {kind} {idx} not saved: the run's "
                                    "lease was lost", lease_lost=True)
        self._parts.setdefault((video_id, kind), {})[idx] = copy.deepcopy(data)

    async def clear_parts(self, video_id: str, kind: str, *, token: int | None = None) -> None:
        if not self._live_run(video_id, token):
            raise InvalidTransition(f"video {video_id}: {kind} parts not cleared: the run's "
                                    "lease was lost", lease_lost=True)
        self._parts.pop((video_id, kind), None)

    # ------------------------------------------------------------------ samples and state

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        self._samples.extend(samples)

    async def perf_samples(self, limit: int = 20_000) -> list[PerfSample]:
        return list(self._samples[-limit:])

    async def set_state(self, key: str, value: Any, now: float) -> None:
        self._state[key] = (copy.deepcopy(value), now)

    async def update_state(self, key: str, change: Callable[[Any], Any], now: float) -> Any:
        got = self._state.get(key)
        value = change(None if got is None else copy.deepcopy(got[0]))
        self._state[key] = (copy.deepcopy(value), now)
        return value

    async def get_state(self, key: str) -> tuple[Any, float] | None:
        got = self._state.get(key)
        return None if got is None else (copy.deepcopy(got[0]), got[1])

    async def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]:
        return {k: (copy.deepcopy(v), at) for k, (v, at) in self._state.items()
                if k.startswith(prefix)}

    # ------------------------------------------------------------------ search and listings

    async def index_video(self, video_id: str, docs: SearchDocs) -> None:
        if docs.passages is not None:
            self._passages[video_id] = tuple(docs.passages)
        if docs.claims is not None:
            self._claims[video_id] = tuple(docs.claims)
        if docs.video is not None:
            if docs.video.empty:
                self._videos.pop(video_id, None)
            else:
                self._videos[video_id] = docs.video

    async def clear_search(self) -> None:
        self._passages.clear()
        self._claims.clear()
        self._videos.clear()

    async def search_counts(self) -> dict[str, int]:
        return {"claims": sum(len(c) for c in self._claims.values()),
                "passages": sum(len(p) for p in self._passages.values()),
                "metadata": len(self._videos),
                "videos": len({v for v, c in self._claims.items() if c} |
                              {v for v, p in self._passages.items() if p} | set(self._videos))}

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        m = Matcher(query.node)
        hits: list[SearchHit] = []
        for r in self._ordered():
            if query.channel and (r["channel"] or "").lower() != query.channel.lower():
                continue
            if query.since and not (r["upload_date"] and r["upload_date"] >= query.since):
                continue
            head = {"video_id": r["id"], "url": r["url"], "video_kind": r["kind"],
                    "title": r["title"], "channel": r["channel"],
                    "upload_date": r["upload_date"]}
            if query.where == "videos":
                doc = self._videos.get(r["id"])
                if doc is not None and (hit := self._video_hit(m, doc, head)) is not None:
                    hits.append(hit)
            elif query.where == "claims":
                for c in self._claims.get(r["id"], ()):
                    text, evidence = doc_words(c.text), doc_words(c.evidence)
                    if not m.matches([*text, "\x00", *evidence]):
                        continue
                    snippet, _ = m.snippet(c.text if m.spans(c.text) else c.evidence)
                    hits.append(SearchHit(
                        kind="claim", idx=c.idx, score=m.score([(text, 2.0), (evidence, 1.0)]),
                        snippet=snippet, text=c.text, start_s=c.start_s, end_s=c.end_s,
                        evidence=c.evidence, type=c.type, rank=c.rank,
                        importance=c.importance, **head))
            else:
                for p in self._passages.get(r["id"], ()):
                    words = doc_words(p.text)
                    if not m.matches(words):
                        continue
                    snippet, at = m.snippet(p.text)
                    hits.append(SearchHit(
                        kind="transcript", idx=p.idx, score=m.score([(words, 1.0)]),
                        snippet=snippet, text=p.text, start_s=p.time_at(at), end_s=p.end_s,
                        **head))
        hits.sort(key=lambda h: (-h.score, h.video_id, h.idx))
        return hits[:query.limit]

    @staticmethod
    def _video_hit(m: Matcher, doc: VideoDoc, head: dict[str, Any]) -> SearchHit | None:
        """A video document's hit: its snippet from the first field holding a match."""
        texts = doc.texts()
        words = [doc_words(t) for t in texts]
        if not m.matches([w for ws in words for w in (*ws, "\x00")]):
            return None
        at = next((i for i, t in enumerate(texts) if m.spans(t)), 0)
        snippet, _ = m.snippet(texts[at])
        return SearchHit(kind="video", idx=0, score=m.score(list(zip(words, VIDEO_WEIGHTS,
                                                                      strict=True))),
                         snippet=snippet, text=texts[at], start_s=None, end_s=None,
                         field=VIDEO_FIELDS[at], **head)

    async def video_claims(self, video_id: str, limit: int = 5) -> tuple[int, list[ClaimDoc]]:
        claims = self._claims.get(video_id, ())
        top = sorted(claims, key=lambda c: (c.rank is None, c.rank or 0,
                                            -(c.importance or 0), c.idx))
        return len(claims), list(top[:limit])

    async def find_videos(self, *, state: str | None = None, kind: str | None = None,
                          error_kind: str | None = None, channel: str | None = None,
                          limit: int | None = None) -> list[VideoRow]:
        rows = [r for r in self._ordered()
                if (state is None or r["state"] == state) and (kind is None or r["kind"] == kind)
                and (error_kind is None or r["error_kind"] == error_kind)
                and (channel is None or (r["channel"] or "").lower() == channel.lower())]
        return [self._view(r) for r in rows[:limit]]

    async def event_log(self, *, after: int = 0, video_id: str | None = None,
                        stage: str | None = None, kind: str | None = None,
                        limit: int = 100) -> list[LogEvent]:
        found = [LogEvent(i, at, vid, st, ev, k, msg)
                 for i, (at, vid, st, ev, k, msg) in enumerate(self._events, 1)
                 if i > after and (video_id is None or vid == video_id)
                 and (stage is None or st == stage) and (kind is None or k == kind)]
        return found[-limit:] if limit > 0 else []
