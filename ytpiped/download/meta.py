"""What one extraction says about a video, kept for export, search and the web page;
and its subtitle tracks as transcript segments. Pure.

`metadata(info)` picks the fields worth keeping from yt-dlp's info dict (the same
extraction that downloads the audio: no extra request). `pick_subtitles` chooses a
track in the wanted language (human-made first; automatic ones only when asked), and
`parse_vtt` turns a WebVTT file into segments with times, the transcript's own shape.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: info-dict keys kept as they are
_KEYS = ("id", "title", "channel", "channel_id", "uploader", "upload_date", "duration",
         "description", "language", "tags", "categories", "webpage_url", "live_status",
         "media_type", "release_timestamp", "timestamp", "extractor_key")

SUBTITLE_MODES = ("never", "manual", "any")


def metadata(info: Mapping[str, Any]) -> dict[str, Any]:
    """The video's metadata worth keeping: title, channel and its id, upload date,
    duration, description, chapters, language, tags (None where unknown)."""
    out: dict[str, Any] = {k: info.get(k) for k in _KEYS}
    out["channel"] = info.get("channel") or info.get("uploader")
    out["chapters"] = chapters(info.get("chapters"))
    out["tags"] = list(info.get("tags") or [])
    return out


def chapters(raw: Any) -> list[dict[str, Any]]:
    """yt-dlp's chapters -> [{start, end, title}] in order, empty and reversed ones dropped."""
    out: list[dict[str, Any]] = []
    for c in raw or []:
        try:
            start, end = float(c["start_time"]), float(c["end_time"])
        except (KeyError, TypeError, ValueError):
            continue
        if end > start:
            out.append({"start": start, "end": end, "title": str(c.get("title") or "")})
    return sorted(out, key=lambda c: c["start"])


@dataclass(frozen=True)
class Track:
    lang: str
    url: str
    automatic: bool


def pick_subtitles(info: Mapping[str, Any], mode: str, lang: str) -> Track | None:
    """The WebVTT track to use instead of Whisper, or None: human-made subtitles in `lang`
    (or a regional variant, "en-GB" for "en"); with mode "any" automatic ones after them.
    Automatic tracks translated from another language ("en-de") are never used."""
    if mode == "never":
        return None
    found = [(False, info.get("subtitles") or {})]
    if mode == "any":
        found.append((True, info.get("automatic_captions") or {}))
    for automatic, tracks in found:
        for key in sorted(tracks, key=lambda k: (k != lang, k)):
            # a regional variant of a human-made track; YouTube's automatic track of the
            # spoken language ("en-orig"), never one translated from it ("en-de")
            variant = (key == f"{lang}-orig") if automatic else key.startswith(f"{lang}-")
            if key != lang and not variant:
                continue
            vtt = [t for t in tracks[key] or [] if t.get("ext") == "vtt" and t.get("url")]
            if vtt:
                return Track(key, str(vtt[0]["url"]), automatic)
    return None


_CUE_TIME = re.compile(r"^\s*((?:\d+:)?\d+:\d+[.,]\d+)\s*-->\s*((?:\d+:)?\d+:\d+[.,]\d+)")
_TAG = re.compile(r"<[^>]*>")


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    total = 0.0
    for p in parts:
        total = total * 60 + float(p)
    return total


def parse_vtt(text: str) -> list[dict[str, Any]]:
    """WebVTT -> [{start, end, text}] (tags and entities removed, blank cues dropped, lines
    repeated from the previous cue, as YouTube's automatic captions roll, removed)."""
    out: list[dict[str, Any]] = []
    blocks = re.split(r"\r?\n\s*\r?\n", text.replace("\ufeff", ""))
    previous: list[str] = []
    for block in blocks:
        lines = block.splitlines()
        at = next((i for i, line in enumerate(lines) if _CUE_TIME.match(line)), None)
        if at is None:
            continue
        m = _CUE_TIME.match(lines[at])
        assert m is not None
        body = [html.unescape(_TAG.sub("", line)).strip() for line in lines[at + 1:]]
        body = [line for line in body if line]
        fresh = [line for line in body if line not in previous]
        previous = body
        words = " ".join(fresh)
        if words:
            out.append({"start": round(_seconds(m.group(1)), 3),
                        "end": round(_seconds(m.group(2)), 3), "text": words})
    return out


def without_ranges(segments: Sequence[Mapping[str, Any]],
                   ranges: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """Segments whose middle lies in none of `ranges` (sponsor reads are left out)."""
    def inside(s: Mapping[str, Any]) -> bool:
        mid = (float(s["start"]) + float(s["end"])) / 2
        return any(lo <= mid < hi for lo, hi in ranges)

    return [dict(s) for s in segments if not inside(s)]
