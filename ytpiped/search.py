"""`ytpiped search` and `ytpiped reindex`: what goes into the search indexes, deep links,
and hits as a person or a program reads them.

A transcript is indexed as passages (consecutive segments, about half a minute each, each
segment's start kept so a hit points at the segment holding the match), an evaluated
mining result as its claims (text + evidence; duplicates left out), a video's metadata
as one document (title, tags, chapter titles, channel, description). The worker indexes a
video in the transaction that records its metadata (download), its transcript
(transcribe, or download when the video's own subtitles are its transcript) or its
mining result (evaluate); `reindex` rebuilds the three indexes from the files in the data
dir (the metadata from DATA/meta/<id>.json, else from what the store kept). The query
language and what the stores do with it: ytpiped/store/search.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ytpiped.errors import UsageError
from ytpiped.paths import DataDir
from ytpiped.store.search import (
    MARK,
    VIDEO_KINDS,
    ClaimDoc,
    Passage,
    SearchDocs,
    SearchHit,
    SearchQuery,
    VideoDoc,
    parse,
    video_doc,
)
from ytpiped.text import printable

if TYPE_CHECKING:
    from ytpiped.store.base import Store
    from ytpiped.store.blocking import SyncDB
    from ytpiped.store.model import VideoRow

In = Literal["claims", "transcripts", "videos", "all"]
#: what `--in` accepts; `all` searches the three indexes
WHERE = ("claims", "transcripts", "videos", "all")
#: the `search_counts` keys of the indexes each `--in` searches
COUNTED = {"claims": ("claims",), "transcripts": ("passages",), "videos": ("metadata",),
           "all": ("claims", "passages", "metadata")}
#: a passage ends once it spans this long or holds this many characters
PASSAGE_S = 30.0
PASSAGE_CHARS = 600
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")


# ---------------------------------------------------------------------- what is indexed


def passages(segments: Iterable[Mapping[str, Any]]) -> tuple[Passage, ...]:
    """Transcript segments grouped into passages of at most PASSAGE_S seconds or
    PASSAGE_CHARS characters (a longer segment is a passage of its own)."""
    out: list[Passage] = []
    texts: list[str] = []
    marks: list[tuple[int, float]] = []
    start = end = 0.0

    def flush() -> None:
        if texts:
            out.append(Passage(len(out), start, end, " ".join(texts), tuple(marks)))
            texts.clear()
            marks.clear()

    size = 0
    for s in segments:
        text = " ".join(str(s.get("text", "")).split())
        if not text:
            continue
        seg_start, seg_end = float(s.get("start") or 0.0), float(s.get("end") or 0.0)
        if texts and (seg_start - start >= PASSAGE_S or size + 1 + len(text) > PASSAGE_CHARS):
            flush()
        if not texts:
            start, end, size = seg_start, seg_end, -1
        marks.append((size + 1, seg_start))
        texts.append(text)
        size += 1 + len(text)
        end = max(end, seg_end, seg_start)
    flush()
    return tuple(out)


def claim_docs(doc: Mapping[str, Any]) -> tuple[ClaimDoc, ...]:
    """The claims of an evaluated mining result (DATA/mining/<id>.json) as search indexes
    them: every claim that is not a duplicate of another, `idx` its place in the file."""
    out = []
    for i, c in enumerate(doc.get("claims") or []):
        if not isinstance(c, Mapping) or c.get("duplicate_of") is not None:
            continue
        text = str(c.get("text") or "").strip()
        if not text:
            continue
        out.append(ClaimDoc(i, text, str(c.get("evidence") or ""), _str(c.get("type")),
                            _num(c.get("start")), _num(c.get("end")), _int(c.get("rank")),
                            _int(c.get("importance"))))
    return tuple(out)


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _read(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; OSError or ValueError (naming the file) otherwise."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return doc


def transcript_file(data_dir: Path, video_id: str, info: Mapping[str, Any]) -> Path:
    """The video's JSON transcript: the one its transcribe outcome names, else the default
    DATA/transcripts/<id>.json."""
    data = DataDir(data_dir)
    tr = info.get("transcript")
    stored = [p for p in (tr.get("paths") or []) if str(p).endswith(".json")] \
        if isinstance(tr, Mapping) else []
    found = data.resolve(str(stored[0])) if stored else None
    return found or data.transcript(video_id, "json")


def stage_docs(stage: str, data_dir: Path, video_id: str,
               info: Mapping[str, Any]) -> SearchDocs | None:
    """What a stage that just finished adds to the indexes: the video's metadata
    (download: `info.meta`; with the transcript its subtitles gave, that transcript's
    passages too), a transcript's passages (transcribe), an evaluation's claims (evaluate);
    None for other stages and for a download that kept no metadata (a playlist). Raises
    OSError or ValueError when a file cannot be read."""
    if stage == "download":
        meta = info.get("meta")
        if not isinstance(meta, Mapping):
            return None
        found = None
        if isinstance(info.get("transcript"), Mapping):
            found = stage_docs("transcribe", data_dir, video_id, info)
        return SearchDocs(video=video_doc(meta),
                          passages=found.passages if found is not None else None)
    if stage == "transcribe":
        doc = _read(transcript_file(data_dir, video_id, info))
        return SearchDocs(passages=passages(doc.get("segments") or []))
    if stage == "evaluate":
        return SearchDocs(claims=claim_docs(_read(DataDir(data_dir).mining(video_id))))
    return None


def metadata_doc(data_dir: Path, row: VideoRow) -> VideoDoc | None:
    """A video's document from DATA/meta/<id>.json, else from what its row kept (info.meta,
    title, channel); None for a playlist or channel, or a video nothing is known of."""
    if row.kind not in VIDEO_KINDS:
        return None
    try:
        meta: Mapping[str, Any] | None = _read(DataDir(data_dir).meta(row.id))
    except (OSError, ValueError):
        kept = row.info.get("meta")
        meta = kept if isinstance(kept, Mapping) else None
    doc = video_doc(meta, row.title, row.channel)
    return None if doc.empty else doc


def video_docs(data_dir: Path, row: VideoRow) -> SearchDocs:
    """Everything one video gives the indexes (for `reindex`): its files' passages and
    claims, and its metadata's document; missing or unreadable files give nothing."""
    found: dict[str, Any] = {"video": metadata_doc(data_dir, row)}
    for stage, key in (("transcribe", "passages"), ("evaluate", "claims")):
        try:
            docs = stage_docs(stage, data_dir, row.id, row.info)
        except (OSError, ValueError):
            continue
        if docs is not None:
            found[key] = getattr(docs, key)
    return SearchDocs(**found)


@dataclass
class Reindexed:
    videos: int = 0
    passages: int = 0
    claims: int = 0
    metadata: int = 0  # video documents

    def to_json(self) -> dict[str, int]:
        return {"videos": self.videos, "passages": self.passages, "claims": self.claims,
                "metadata": self.metadata}


def reindex(db: SyncDB, data_dir: Path,
            progress: Callable[[Reindexed], None] | None = None) -> Reindexed:
    """Empty the indexes and fill them again from every video's files (and, for its
    metadata without a file, its row), one transaction per video."""
    db.clear_search()
    done = Reindexed()
    for row in db.find_videos():
        docs = video_docs(data_dir, row)
        if not docs.passages and not docs.claims and docs.video is None:
            continue
        db.index_video(row.id, docs)
        done.videos += 1
        done.passages += len(docs.passages or ())
        done.claims += len(docs.claims or ())
        done.metadata += docs.video is not None
        if progress is not None and done.videos % 500 == 0:
            progress(done)
    return done


# ---------------------------------------------------------------------- links and times


def stamp(seconds: float | None) -> str:
    """12:03, or 1:02:03 past an hour; --:-- when unknown."""
    if seconds is None:
        return "--:--"
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def is_youtube(video_id: str, video_kind: str) -> bool:
    return video_kind == "video" and YOUTUBE_ID.fullmatch(video_id) is not None


def deep_link(video_id: str, url: str, video_kind: str, start_s: float | None) -> str:
    """A link that opens the video at `start_s`: YouTube's watch URL with `&t=123s`; any
    other URL as it is (the time goes beside it)."""
    if not is_youtube(video_id, video_kind):
        return url
    link = f"https://www.youtube.com/watch?v={video_id}"
    return link if start_s is None else f"{link}&t={max(0, int(start_s))}s"


# ---------------------------------------------------------------------- searching


def parse_since(text: str, option: str = "--since") -> str:
    """YYYY-MM-DD or YYYYMMDD as the YYYYMMDD the database stores upload dates in."""
    digits = text.replace("-", "")
    if not re.fullmatch(r"\d{8}", digits) or not re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", text):
        raise UsageError(f"{option} {text!r}: expected a date as YYYY-MM-DD (e.g. 2024-03-01)")
    return digits


Kind = Literal["claims", "transcripts", "videos"]


def queries(text: str, where: In = "all", *, channel: str | None = None,
            since: str | None = None, limit: int = 20) -> list[SearchQuery]:
    """The index queries a search makes (one per index searched). Raises UsageError for a
    bad limit and QuerySyntaxError (a UsageError) for a query that cannot be parsed."""
    if limit < 1:
        raise UsageError(f"--limit {limit}: must be 1 or more")
    if where not in WHERE:
        raise UsageError(f"--in {where!r}: expected claims, transcripts, videos or all")
    node = parse(text)
    kinds: Sequence[Kind] = ("claims", "transcripts", "videos") if where == "all" else \
        (where,)
    return [SearchQuery(node, kind, channel or None, since or None, limit) for kind in kinds]


def merge(results: Sequence[Sequence[SearchHit]], limit: int) -> list[SearchHit]:
    """Hits of several indexes in one list: each by its score relative to the best of its
    own index (bm25 scores of two indexes do not compare), the first index first on a
    tie."""
    if len(results) == 1:
        return list(results[0][:limit])
    found: list[tuple[float, int, SearchHit]] = []
    for order, hits in enumerate(results):
        top = max((h.score for h in hits), default=0.0)
        found += [(h.score / top if top > 0 else 0.0, order, h) for h in hits]
    found.sort(key=lambda t: (-t[0], t[1]))
    return [h for _, _, h in found[:limit]]


def run(db: SyncDB, text: str, where: In = "all", *, channel: str | None = None,
        since: str | None = None, limit: int = 20) -> list[SearchHit]:
    """The best `limit` hits, best first (`ytpiped search`). `since`: YYYYMMDD
    (`parse_since`); `channel` without case."""
    qs = queries(text, where, channel=channel, since=since, limit=limit)
    return merge([db.search(q) for q in qs], limit)


async def find(store: Store, text: str, where: In = "all", *, channel: str | None = None,
               since: str | None = None, limit: int = 20) -> list[SearchHit]:
    """`run` over the async Store protocol (the daemon's store; the web page)."""
    qs = queries(text, where, channel=channel, since=since, limit=limit)
    return merge([await store.search(q) for q in qs], limit)


def hit_json(hit: SearchHit) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": hit.kind, "video_id": hit.video_id, "title": hit.title,
        "channel": hit.channel, "upload_date": iso_date(hit.upload_date), "url": hit.url,
        "link": deep_link(hit.video_id, hit.url, hit.video_kind, hit.start_s),
        "start_s": hit.start_s, "end_s": hit.end_s, "time": stamp(hit.start_s),
        "snippet": hit.snippet, "text": hit.text, "score": round(hit.score, 6)}
    if hit.kind == "claim":
        out.update(claim=hit.idx, evidence=hit.evidence, type=hit.type, rank=hit.rank,
                   importance=hit.importance)
    elif hit.kind == "video":  # its metadata matched: which field, no time
        out.update(field=hit.field, time=None)
    else:
        out["passage"] = hit.idx
    return out


def iso_date(d: str | None) -> str | None:
    """YYYYMMDD (yt-dlp's) as YYYY-MM-DD."""
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if d and re.fullmatch(r"\d{8}", d) else d


def marked(snippet: str, color: bool) -> str:
    """A snippet for a terminal: the marks as bold (color) or kept as `**`."""
    text = printable(" ".join(snippet.split()))
    if not color:
        return text
    parts = text.split(MARK)
    return "".join(p if i % 2 == 0 else f"\033[1m{p}\033[0m" for i, p in enumerate(parts))


def format_hits(hits: Sequence[SearchHit], *, color: bool = False) -> str:
    """Three lines a hit: what and where, the snippet (a video hit's with the field it
    comes from), the link."""
    lines = []
    for n, h in enumerate(hits, 1):
        what = f"claim #{h.rank}" if h.kind == "claim" and h.rank else h.kind
        head = [what, h.title or h.video_id]
        head += [] if h.kind == "video" else [stamp(h.start_s)]
        head += [x for x in (h.channel, iso_date(h.upload_date)) if x]
        link = deep_link(h.video_id, h.url, h.video_kind, h.start_s)
        if not is_youtube(h.video_id, h.video_kind) and h.start_s is not None:
            link += f"  (at {stamp(h.start_s)})"
        field = f"{h.field}: " if h.kind == "video" and h.field else ""
        lines += [printable(f"{n:>2}. " + " · ".join(head)),
                  f"    {field}{marked(h.snippet, color)}", printable(f"    {link}")]
    return "\n".join(lines)
