"""The data the stores hand out and take in, the same for every backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ytpiped.errors import YtpipedError
from ytpiped.scheduling.tracker import PerfSample
from ytpiped.states import State

__all__ = ["BUFFER_STATES", "OUTCOME_FIELDS", "Event", "LogEvent", "NewVideo", "PerfSample",
           "StoreNotReady", "StoreUnavailable", "VideoRow", "retranscribe_message"]

#: columns a stage outcome may set
OUTCOME_FIELDS = frozenset({"title", "channel", "upload_date", "duration_s", "size_bytes",
                            "audio_path"})
#: states whose audio is on disk waiting for (or in) transcription
BUFFER_STATES = (State.DOWNLOADED, State.ANALYZING, State.ANALYZED, State.TRANSCRIBING)


def retranscribe_message(target: str, model: str | None) -> str:
    """The `retranscribe` event's message: where the video re-enters, with which model."""
    where = "audio kept" if target == State.ANALYZED else "audio downloaded again"
    return f"{where}; model {model or '(configured)'}"


class StoreNotReady(Exception):
    """A read-only open found no schema yet."""


class StoreUnavailable(YtpipedError):
    """The database server `store.url` names cannot be reached (the message says which, never
    with its password, and why)."""


class NewVideo(NamedTuple):
    id: str
    url: str
    kind: str


@dataclass(frozen=True)
class Event:
    """An events-log entry written in the same transaction as a state change."""

    event: str
    stage: str | None = None
    kind: str | None = None
    message: str | None = None


class LogEvent(NamedTuple):
    """One row of the events log, as `ytpiped logs` shows it (`host`: the PostgreSQL host
    that wrote it)."""

    id: int
    at: float
    video_id: str | None
    stage: str | None
    event: str
    kind: str | None
    message: str | None
    host: str | None = None


@dataclass(frozen=True)
class VideoRow:
    id: str
    url: str
    kind: str
    parent_id: str | None
    title: str | None
    channel: str | None
    upload_date: str | None
    duration_s: float | None
    size_bytes: int | None
    audio_path: str | None
    state: str
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_until: float | None
    failed_stage: str | None
    error_kind: str | None
    error: str | None
    info: dict[str, Any]
    created_at: float
    updated_at: float
    lease_token: int = 0  # incremented by every claim; the fencing token of the run
    priority: int = 0  # `ytpiped add --priority N`: higher is claimed first in every stage





def outcome_fields(fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """The columns a stage outcome sets; any other name is a programming error."""
    out = dict(fields or {})
    unknown = set(out) - OUTCOME_FIELDS
    if unknown:
        raise ValueError(f"unknown outcome fields: {sorted(unknown)}")
    return out


def lease_guard(video_id: str, state: str, owner: str | None, token: int | None, *,
                mark: str = "?") -> tuple[str, list[Any]]:
    """The WHERE clause that fences a run's write: the row, its state and, when given, the
    lease owner and the fencing token (`mark` is the driver's placeholder)."""
    guard = f"id = {mark} AND state = {mark}"
    params: list[Any] = [video_id, state]
    if owner is not None:
        guard += f" AND lease_owner = {mark}"
        params.append(owner)
    if token is not None:
        guard += f" AND lease_token = {mark}"
        params.append(token)
    return guard, params


def video_filters(state: str | None, kind: str | None, error_kind: str | None,
                  channel: str | None, *, mark: str = "?") -> tuple[str, list[Any]]:
    """The WHERE clause (or "") of a video listing (`ls`): equal state, kind and error
    kind, the channel without case (`mark` is the driver's placeholder)."""
    where: list[str] = []
    params: list[Any] = []
    for col, value in (("state", state), ("kind", kind), ("error_kind", error_kind)):
        if value is not None:
            where.append(f"{col} = {mark}")
            params.append(value)
    if channel is not None:
        where.append(f"lower(channel) = lower({mark})")
        params.append(channel)
    return (" WHERE " + " AND ".join(where) if where else ""), params


#: what `retry` merges into a skipped video's info (RFC 7396: null removes the reason): it
#: is queued anyway, and the download stage applies no filter to it again
UNFILTERED_PATCH: dict[str, Any] = {"skipped": None, "unfiltered": True}

#: the row classes a claim may be limited to (Store.claim's `only`): "other_hosts", the
#: URLs on hosts that are not YouTube (kind "generic": a YouTube URL is always a video,
#: playlist or channel), added directly or listed by a followed feed or page, which the
#: download stage paces apart from YouTube
CLAIM_ONLY = {"other_hosts": " AND kind = 'generic'"}


def claim_only(only: str | None) -> str:
    """The SQL condition (" AND ...") of a claim limited to `only` ("": no limit)."""
    if only is None:
        return ""
    if only not in CLAIM_ONLY:
        raise ValueError(f"unknown claim limit {only!r}: one of {sorted(CLAIM_ONLY)}")
    return CLAIM_ONLY[only]


def is_other_host(kind: str) -> bool:
    """A row of the "other_hosts" class (what CLAIM_ONLY's SQL keeps)."""
    return kind == "generic"
