"""`ytpiped ls`, `show` and `logs`: videos, one video's history and files, the event log.

The readers take a synchronous store (`SyncDB`: the CLI) or, with an `_async` suffix, the
`Store` protocol (the daemon's, the web page's); the rest turns what they return into
JSON objects and terminal lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ytpiped.paths import DataDir
from ytpiped.search import deep_link, is_youtube, iso_date, stamp
from ytpiped.store.model import LogEvent, VideoRow
from ytpiped.store.search import ClaimDoc
from ytpiped.text import printable

if TYPE_CHECKING:
    from ytpiped.store.base import Store
    from ytpiped.store.blocking import SyncDB

#: the most history `show` reads of one video
HISTORY_MAX = 1000


@dataclass(frozen=True)
class VideoDetail:
    """What `ytpiped show` shows of one video."""

    row: VideoRow
    link: str  # where to watch it (YouTube's watch URL, else the URL added)
    files: dict[str, str]  # what exists of it in the data dir: name -> path
    history: list[LogEvent]  # its events, oldest first
    claims_total: int  # claims indexed for search
    top_claims: list[ClaimDoc]  # the best by rank


def files_of(data_dir: Path, row: VideoRow) -> dict[str, str]:
    """The video's files that exist: audio, transcript.<ext>, mining."""
    data = DataDir(data_dir)
    found: dict[str, Path | None] = {"audio": data.resolve(row.audio_path)}
    for ext in ("json", "txt", "srt", "vtt"):
        found[f"transcript.{ext}"] = data.transcript(row.id, ext)
    found["mining"] = data.mining(row.id)
    return {k: str(p) for k, p in found.items() if p is not None and p.is_file()}


def _detail(data_dir: Path, row: VideoRow, history: list[LogEvent],
            claims: tuple[int, list[ClaimDoc]]) -> VideoDetail:
    return VideoDetail(row, deep_link(row.id, row.url, row.kind, None), files_of(data_dir, row),
                       history, claims[0], claims[1])


def detail(db: SyncDB, data_dir: Path, video_id: str, top: int = 5) -> VideoDetail | None:
    """One video's detail; None when the store has no such video."""
    row = db.get(video_id)
    if row is None:
        return None
    return _detail(data_dir, row, db.event_log(video_id=video_id, limit=HISTORY_MAX),
                   db.video_claims(video_id, top))


async def detail_async(store: Store, data_dir: Path, video_id: str,
                       top: int = 5) -> VideoDetail | None:
    row = await store.get(video_id)
    if row is None:
        return None
    return _detail(data_dir, row, await store.event_log(video_id=video_id, limit=HISTORY_MAX),
                   await store.video_claims(video_id, top))


def follow(db: SyncDB, *, wait: Callable[[], bool], after: int = 0,
           video_id: str | None = None, stage: str | None = None,
           kind: str | None = None) -> Iterator[LogEvent]:
    """Events after id `after` as they are written; between polls `wait()` pauses and
    says whether to go on."""
    while True:
        for event in db.event_log(after=after, video_id=video_id, stage=stage, kind=kind,
                                  limit=10_000):
            after = event.id
            yield event
        if not wait():
            return


# ---------------------------------------------------------------------- JSON


def video_json(row: VideoRow) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "link": deep_link(row.id, row.url, row.kind, None),
            "kind": row.kind, "state": row.state, "title": row.title, "channel": row.channel,
            "upload_date": iso_date(row.upload_date), "duration_s": row.duration_s,
            "attempts": row.attempts, "failed_stage": row.failed_stage,
            "error_kind": row.error_kind, "error": row.error, "parent_id": row.parent_id,
            "created_at": row.created_at, "updated_at": row.updated_at}


def event_json(e: LogEvent) -> dict[str, Any]:
    return {"id": e.id, "at": e.at, "time": _utc(e.at), "video_id": e.video_id,
            "stage": e.stage, "event": e.event, "kind": e.kind, "message": e.message,
            "host": e.host}


def claim_json(row: VideoRow, c: ClaimDoc) -> dict[str, Any]:
    return {"claim": c.idx, "text": c.text, "evidence": c.evidence, "type": c.type,
            "start_s": c.start_s, "end_s": c.end_s, "time": stamp(c.start_s), "rank": c.rank,
            "importance": c.importance,
            "link": deep_link(row.id, row.url, row.kind, c.start_s)}


def detail_json(d: VideoDetail) -> dict[str, Any]:
    return {"video": {**video_json(d.row), "size_bytes": d.row.size_bytes,
                      "audio_path": d.row.audio_path, "info": d.row.info},
            "files": d.files, "history": [event_json(e) for e in d.history],
            "claims": {"total": d.claims_total,
                       "top": [claim_json(d.row, c) for c in d.top_claims]}}


# ---------------------------------------------------------------------- terminal


def _utc(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _clip(text: str | None, width: int) -> str:
    text = printable(" ".join((text or "").split()))
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def _duration(seconds: float | None) -> str:
    return stamp(seconds) if seconds is not None else "-"


def format_ls(rows: list[VideoRow]) -> str:
    """One line a video: id, state, attempts, duration, channel, title."""
    states = [_clip(r.state if r.state != "failed" else f"failed:{r.error_kind or '?'}", 24)
              for r in rows]
    width = min(40, max([11, *(len(r.id) for r in rows)]))
    sw = max([12, *map(len, states)])
    lines = [f"{'id':<{width}}  {'state':<{sw}} {'tries':>5} {'length':>8}  "
             f"{'channel':<20}  title"]
    for r, state in zip(rows, states, strict=True):
        lines.append(f"{_clip(r.id, 40):<{width}}  {state:<{sw}} {r.attempts:>5} "
                     f"{_duration(r.duration_s):>8}  {_clip(r.channel, 20):<20}  "
                     f"{_clip(r.title or ('(' + r.kind + ') ' + r.url), 80)}")
    return "\n".join(lines)


def format_event(e: LogEvent, *, video: bool = True) -> str:
    """One line: time (UTC), video id (unless `video` is False), stage and event, host,
    [error kind] and message."""
    what = " ".join(x for x in (e.stage, e.event) if x)
    tail = " ".join(x for x in ((f"[{e.kind}]" if e.kind else ""), _clip(e.message, 200)) if x)
    host = f" @{_clip(e.host, 30)}" if e.host else ""
    vid = f"  {_clip(e.video_id or '-', 40):<11}" if video else ""
    return f"{_utc(e.at)}{vid}  {what}{host}" + (f"  {tail}" if tail else "")


def format_show(d: VideoDetail) -> str:
    r = d.row
    lines = [f"{_clip(r.title, 200) or '(no title yet)'}",
             f"  id        {printable(r.id)} ({r.kind})",
             f"  url       {printable(r.url)}"]
    if d.link != r.url:
        lines.append(f"  watch     {d.link}")
    lines += [f"  channel   {_clip(r.channel, 80) or '-'}",
              f"  uploaded  {iso_date(r.upload_date) or '-'}",
              f"  duration  {_duration(r.duration_s)}",
              f"  state     {r.state}  (attempts {r.attempts}, updated {_utc(r.updated_at)})"]
    if r.state == "failed" or r.error:
        lines.append(f"  error     [{r.failed_stage or '-'}/{r.error_kind or '-'}] "
                     f"{_clip(r.error, 300)}")
        if r.state == "failed":
            lines.append(f"  retry     ytpiped retry {printable(r.id)}")
    lines.append("files:")
    lines += [f"  {name:<16}{printable(path)}" for name, path in d.files.items()] or \
        ["  (none yet)"]
    lines.append(f"claims: {d.claims_total}" + (" (top by rank)" if d.top_claims else ""))
    for c in d.top_claims:
        lines.append(f"  {stamp(c.start_s)}  {_clip(c.text, 120)}")
        if is_youtube(r.id, r.kind):  # another URL cannot open at a time: it is above
            lines.append(f"         {deep_link(r.id, r.url, r.kind, c.start_s)}")
    lines.append("history:")
    lines += [f"  {format_event(e, video=False)}" for e in d.history] or ["  (no events)"]
    return "\n".join(lines)
