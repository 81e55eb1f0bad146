"""`ytpiped export`: mined claims, evaluations and transcripts out of the data dir.

    jsonl        OUT/claims.jsonl, one line per claim: the video (id, title, channel,
                 upload date, URL), a deep link to the claim's time, the claim's own fields
                 (text, type, evidence, confidence, start, end, importance, rank, ...),
                 models and prompt versions, token counts where the result records them;
                 OUT/evaluations.jsonl, one line per video (summary, evaluation, people,
                 concepts, provenance)
    csv          OUT/claims.csv: the same claims for a spreadsheet (UTF-8 with a BOM)
    md           an Obsidian-friendly vault (ytpiped/vault.py)
    transcripts  OUT/<slug>.<txt|srt|vtt|json> per video, or one merged file
                 (OUT/transcripts.txt or .json)

`since` (YYYYMMDD) and `channel` pick the videos; `incremental` writes only what changed
since the last export into that folder (OUT/.ytpiped-export.json remembers it): per-video
files of changed videos, and for jsonl/csv new files named claims-<UTC time>.jsonl/.csv
holding only the changed videos. Files are written to a temp name and renamed.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ytpiped import transcription as tx
from ytpiped.errors import UsageError
from ytpiped.paths import DataDir
from ytpiped.search import deep_link, iso_date, stamp

if TYPE_CHECKING:
    from ytpiped.store.model import VideoRow

Format = Literal["jsonl", "md", "csv", "transcripts"]
FORMATS = ("jsonl", "md", "csv", "transcripts")
TRANSCRIPT_FORMATS = ("txt", "srt", "vtt", "json")
MANIFEST = ".ytpiped-export.json"
#: claim columns of the CSV, in order; other scalar fields follow, sorted
CSV_COLUMNS = ("video_id", "title", "channel", "upload_date", "url", "link", "time", "start",
               "end", "rank", "importance", "type", "confidence", "text", "evidence")


def read_output(path: Path) -> dict[str, Any] | None:
    """One video's output (a JSON object), or None when missing or unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def mined_files(data_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every finished (evaluated) video output, sorted by id; unreadable files skipped."""
    for path in sorted(DataDir(data_dir).mining_dir.glob("*.json")):
        if path.name.endswith(".mined.json") or path.name.startswith("."):
            continue
        doc = read_output(path)
        if doc is not None:
            yield path, doc


def video_meta(data_dir: Path, video_id: str) -> dict[str, Any]:
    """The metadata the download kept (DATA/meta/<id>.json), {} without it."""
    return read_output(DataDir(data_dir).meta(video_id)) or {}


def chapter_at(meta: dict[str, Any], t: Any) -> str | None:
    """The title of the chapter `t` (seconds) falls in, if the video has chapters."""
    if not isinstance(t, int | float):
        return None
    return next((str(c.get("title")) for c in meta.get("chapters") or []
                 if c.get("start", 0) <= t < c.get("end", 0)), None)


#: metadata fields an export carries
META_FIELDS = ("upload_date", "channel_id", "language", "tags", "description", "chapters",
               "webpage_url")


def _stamp(t: Any) -> str:
    if not isinstance(t, int | float):
        return "--:--"
    s = int(t)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def transcript_files(data_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every JSON transcript, sorted by id; unreadable files skipped."""
    for path in sorted(DataDir(data_dir).transcripts_dir.glob("*.json")):
        if not path.name.startswith("."):
            doc = read_output(path)
            if doc is not None:
                yield path, doc


@dataclass
class Report:
    format: str
    out: Path
    videos: int = 0  # videos exported (changed ones, with incremental)
    unchanged: int = 0  # videos left out by incremental
    claims: int = 0
    files: list[str] = field(default_factory=list)  # written, relative to out

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "out": str(self.out.resolve()), "videos": self.videos,
                "unchanged": self.unchanged, "claims": self.claims, "files": self.files}


@dataclass
class Source:
    """One video's file with what the store knows of it."""

    id: str
    path: Path
    doc: dict[str, Any]
    row: VideoRow | None
    meta: dict[str, Any] = field(default_factory=dict)  # DATA/meta/<id>.json

    @property
    def date(self) -> str | None:
        return iso_date((self.row.upload_date if self.row else None)
                        or self.meta.get("upload_date"))

    @property
    def title(self) -> str:
        return str((self.row.title if self.row else None) or self.doc.get("title") or self.id)

    @property
    def channel(self) -> str | None:
        return (self.row.channel if self.row else None) or self.doc.get("channel")

    @property
    def url(self) -> str | None:
        return self.row.url if self.row else None

    @property
    def kind(self) -> str:
        return self.row.kind if self.row else "generic"

    def fingerprint(self) -> str:
        st = self.path.stat()
        r = self.row
        meta = [st.st_mtime_ns, st.st_size] + ([r.title, r.channel, r.upload_date, r.state, r.url]
                                                if r else [])
        return hashlib.sha1(json.dumps(meta).encode()).hexdigest()[:16]


def _write(path: Path, text: str, report: Report, root: Path) -> None:
    """Write `path` (temp + rename) unless it already holds `text`."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)
    report.files.append(str(path.relative_to(root)))


def _picked(sources: Iterator[tuple[Path, dict[str, Any]]], rows: Mapping[str, VideoRow],
            since: str | None, channel: str | None) -> list[Source]:
    out = []
    for path, doc in sources:
        vid = str(doc.get("video_id") or path.stem)
        s = Source(vid, path, doc, rows.get(vid))
        date = s.row.upload_date if s.row else None
        if since and not (date and date >= since):
            continue
        if channel and (s.channel or "").lower() != channel.lower():
            continue
        out.append(s)
    return out


def claim_records(s: Source) -> Iterator[dict[str, Any]]:
    """The jsonl/csv lines of one video: every claim its result holds."""
    raw = s.doc.get("provenance")
    prov: dict[str, Any] = raw if isinstance(raw, dict) else {}
    head = {"video_id": s.id, "title": s.title, "channel": s.channel,
            "upload_date": s.date, "url": s.url}
    # token counts the result records (per claim they come with the claim's own fields)
    tokens = {k: v for k, v in prov.items() if "token" in k}
    for c in s.doc.get("claims") or []:
        if not isinstance(c, dict):
            continue
        start = c.get("start") if isinstance(c.get("start"), int | float) else None
        link = deep_link(s.id, s.url, s.kind, start) if s.url else None
        yield {**head, **c, "link": link, "time": stamp(start) if start is not None else None,
               "chapter": chapter_at(s.meta, start),
               "model": prov.get("model"), "prompt_version": prov.get("prompt_version"),
               "eval_model": prov.get("eval_model"),
               "eval_prompt_version": prov.get("eval_prompt_version"), **tokens}


def export(data_dir: Path, out_dir: Path, fmt: Format = "jsonl", *,
           rows: Mapping[str, VideoRow] | None = None, since: str | None = None,
           channel: str | None = None, incremental: bool = False,
           transcript_format: str = "txt", merged: bool = False,
           now: dt.datetime | None = None) -> Report:
    """Export what `fmt` names into `out_dir` (see the module's doc)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if transcript_format not in TRANSCRIPT_FORMATS:
        raise UsageError(f"--as {transcript_format!r}: expected one of "
                         f"{', '.join(TRANSCRIPT_FORMATS)}")
    if merged and (fmt != "transcripts" or transcript_format not in ("txt", "json")):
        raise UsageError("--merged: only with --format transcripts --as txt or json (srt and "
                         "vtt times start again in every video)")
    rows = rows or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(fmt, out_dir)
    found = _picked(transcript_files(data_dir) if fmt == "transcripts" else
                    mined_files(data_dir), rows, since, channel)
    for s in found:
        s.meta = video_meta(data_dir, s.id)
    manifest_path = out_dir / MANIFEST
    manifest = (read_output(manifest_path) or {}) if incremental or fmt == "md" else {}
    key = fmt if fmt != "transcripts" else f"transcripts.{transcript_format}" + \
        (".merged" if merged else "")
    before: dict[str, Any] = manifest.get(key) or {}
    prints = {s.id: s.fingerprint() for s in found}
    changed = [s for s in found if not incremental or before.get(s.id, {}).get("fp")
               != prints[s.id]]
    report.videos, report.unchanged = len(changed), len(found) - len(changed)
    stamp_ = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    names: dict[str, str] = {}
    if fmt in ("jsonl", "csv"):
        if changed or not incremental:
            _claims(changed, out_dir, fmt, report, f"-{stamp_}" if incremental else "")
    elif fmt == "md":
        names = _vault(found, changed, before, out_dir, report)
    else:
        names = _transcripts(found, changed, out_dir, transcript_format, merged, report)
    entries = {s.id: {"fp": prints[s.id], **({"file": names[s.id]} if s.id in names else {})}
               for s in found}
    manifest[key] = {**(before if incremental else {}), **entries}
    _write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True), Report(fmt, out_dir),
           out_dir)
    return report


def _claims(found: list[Source], out_dir: Path, fmt: str, report: Report, suffix: str) -> None:
    records = [r for s in found for r in claim_records(s)]
    report.claims = len(records)
    if fmt == "csv":
        extra = sorted({k for r in records for k, v in r.items() if k not in CSV_COLUMNS
                        and (v is None or isinstance(v, str | int | float | bool))})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, [*CSV_COLUMNS, *extra], extrasaction="ignore",
                                lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(records)
        _write(out_dir / f"claims{suffix}.csv", "\ufeff" + buf.getvalue(), report, out_dir)
        return
    _write(out_dir / f"claims{suffix}.jsonl",
           "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), report, out_dir)
    evals = []
    for s in found:
        evals.append({"video_id": s.id, "title": s.title, "channel": s.channel,
                      "upload_date": s.date, "url": s.url,
                      "meta": {k: s.meta.get(k) for k in META_FIELDS},
                      "evaluation": s.doc.get("evaluation"), "summary": s.doc.get("summary"),
                      "people": s.doc.get("people"), "concepts": s.doc.get("concepts"),
                      "provenance": s.doc.get("provenance"), "tokens": s.doc.get("tokens")})
    _write(out_dir / f"evaluations{suffix}.jsonl",
           "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in evals), report, out_dir)


def _vault(found: list[Source], changed: list[Source], before: Mapping[str, Any],
           out_dir: Path, report: Report) -> dict[str, str]:
    from ytpiped.vault import Vault, Video

    vault = Vault([Video(s.id, s.doc, s.title, s.url, s.kind, s.channel,
                         s.date, s.row.state if s.row else None,
                         s.row.duration_s if s.row else s.doc.get("duration_s"),
                         tuple(str(t) for t in s.meta.get("tags") or ()))
                   for s in found])
    ids = {s.id for s in changed}
    names = {v.id: vault.video_path(v) for v in vault.videos}
    # a video whose note changed name (its title changed): the old note goes
    for vid, entry in before.items():
        old = entry.get("file") if isinstance(entry, Mapping) else None
        if old and names.get(vid) != old and (out_dir / old).is_file():
            (out_dir / old).unlink()
            ids.add(vid)
    for path, text in vault.files({i for i in ids if i in names}).items():
        _write(out_dir / path, text, report, out_dir)
    report.claims = sum(1 for s in changed for c in s.doc.get("claims") or []
                        if isinstance(c, dict) and c.get("duplicate_of") is None)
    return names


def _transcripts(found: list[Source], changed: list[Source], out_dir: Path, as_: str,
                 merged: bool, report: Report) -> dict[str, str]:
    from ytpiped.vault import names as unique_names
    from ytpiped.vault import slug

    if merged:
        if changed:
            if as_ == "json":
                text = json.dumps([{"video_id": s.id, "title": s.title, "channel": s.channel,
                                    "url": s.url, **s.doc} for s in found],
                                  ensure_ascii=False, indent=1)
            else:
                text = "\n".join(f"# {s.title}\n{s.url or s.id}\n\n"
                                 + tx.to_txt(s.doc.get("segments") or []) for s in found)
            _write(out_dir / f"transcripts.{as_}", text, report, out_dir)
        return {}
    names = {vid: f"{n}.{as_}" for vid, n in unique_names(
        (s.id, slug(s.title, s.id)) for s in sorted(found, key=lambda s: s.id)).items()}
    for s in changed:
        segs = s.doc.get("segments") or []
        text = json.dumps(s.doc, ensure_ascii=False, indent=1) if as_ == "json" else \
            tx.RENDERERS[as_](segs)
        _write(out_dir / names[s.id], text, report, out_dir)
    return names
