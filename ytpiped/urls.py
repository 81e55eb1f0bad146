"""URL canonicalisation for `ytpiped add` (DESIGN.md §3). Pure.

Every YouTube video form becomes its 11-character id; playlists and channels keep a row
of their own kind (expanded later by the download stage); any other http(s) URL is kept
as-is as a `generic` row handled by yt-dlp's extractors.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
PLAYLIST_ID = re.compile(r"^[A-Za-z0-9_-]{10,64}$")
CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
HANDLE = re.compile(r"^@[\w.\-·]{1,100}$")
LEGACY_NAME = re.compile(r"^[\w.\-]{1,100}$")
#: control characters (C0, DEL, C1) and invisible ones (zero-width, bidi overrides, BOM):
#: never part of a real URL, and the raw bytes of terminal escapes
UNSAFE_CHARS = "\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_UNSAFE = re.compile(f"[{UNSAFE_CHARS}]")
# fast path for the common lowercase shapes (anything else takes the full parser)
_FAST_VIDEO = re.compile(
    rf"^(?:https?://)?(?:(?:www\.|m\.|music\.)?youtube\.com/(?:watch\?(?:[^#\s{UNSAFE_CHARS}]*&)?"
    r"v=|(?:shorts|embed|live|v)/)|youtu\.be/)([A-Za-z0-9_-]{11})"
    rf"(?:[?&#/][^\s{UNSAFE_CHARS}]*)?$")

YOUTUBE_HOSTS = frozenset({
    "youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com",
    "gaming.youtube.com", "youtube-nocookie.com", "www.youtube-nocookie.com",
})
SHORT_HOSTS = frozenset({"youtu.be", "www.youtu.be"})
_PATH_VIDEO = ("shorts", "embed", "live", "v", "e")


class Target(NamedTuple):
    """A canonical row to add: `id` is the dedup key (a NamedTuple: 500k are made per add)."""

    id: str
    url: str
    kind: str  # video | playlist | channel | generic


@dataclass(frozen=True)
class Invalid:
    reason: str


def video(video_id: str) -> Target:
    return Target(video_id, f"https://www.youtube.com/watch?v={video_id}", "video")


def _playlist(list_id: str) -> Target:
    return Target(f"playlist:{list_id}", f"https://www.youtube.com/playlist?list={list_id}",
                  "playlist")


def _channel(key: str) -> Target:
    path = key if key.startswith("@") else (f"channel/{key}" if CHANNEL_ID.match(key)
                                            else key)
    return Target(f"channel:{key}", f"https://www.youtube.com/{path}/videos", "channel")


def _youtube(host: str, path: str, query: str) -> Target | Invalid:
    parts = [p for p in path.split("/") if p]
    params = parse_qs(query)
    if host in SHORT_HOSTS:
        if parts and VIDEO_ID.match(parts[0]):
            return video(parts[0])
        return Invalid("youtu.be link without a valid 11-character video id")
    if not parts or parts[0] in ("watch", "watch_popup"):
        if "v" in params:
            vid = params["v"][0]
            if VIDEO_ID.match(vid):
                return video(vid)
            return Invalid(f"video id {vid!r} is not 11 characters of [A-Za-z0-9_-]")
        if "list" in params and parts:
            return _list_or_invalid(params["list"][0])
        return Invalid("YouTube link with no video, playlist or channel in it")
    head = parts[0]
    if head in _PATH_VIDEO:
        if len(parts) > 1 and VIDEO_ID.match(parts[1]):
            return video(parts[1])
        if head == "embed" and len(parts) > 1 and parts[1] == "videoseries" and "list" in params:
            return _list_or_invalid(params["list"][0])
        return Invalid(f"/{head}/ link without a valid 11-character video id")
    if head == "playlist":
        if "list" in params:
            return _list_or_invalid(params["list"][0])
        return Invalid("playlist link without list=")
    if head == "channel":
        if len(parts) > 1 and CHANNEL_ID.match(parts[1]):
            return _channel(parts[1])
        return Invalid("channel link without a valid UC… channel id")
    if head.startswith("@") and HANDLE.match(head):
        return _channel(head)
    if head in ("c", "user") and len(parts) > 1 and LEGACY_NAME.match(parts[1]):
        return _channel(f"{head}/{parts[1]}")
    return Invalid(f"unsupported YouTube link path /{'/'.join(parts)}")


def _list_or_invalid(list_id: str) -> Target | Invalid:
    if PLAYLIST_ID.match(list_id):
        return _playlist(list_id)
    return Invalid(f"playlist id {list_id!r} is malformed")


def generic_id(url: str) -> str:
    return "url-" + hashlib.sha1(url.encode()).hexdigest()[:16]


def canonicalise(text: str) -> Target | Invalid | None:
    """One input line -> a Target, an Invalid with its reason, or None (blank/comment)."""
    line = text.strip()
    if not line or line.startswith("#"):
        return None
    m = _FAST_VIDEO.match(line)
    if m:
        return video(m.group(1))
    if VIDEO_ID.match(line):
        return video(line)
    if any(c.isspace() for c in line):
        return Invalid("contains spaces: one URL or video id per line")
    unsafe = _UNSAFE.search(line)
    if unsafe:
        return Invalid(f"contains a control or invisible character ({unsafe.group()!a})")
    candidate = line
    if "://" not in candidate:
        if candidate.startswith("//"):
            candidate = "https:" + candidate
        elif "." in candidate.split("/", 1)[0]:
            candidate = "https://" + candidate
        else:
            return Invalid("neither a URL nor an 11-character video id")
    try:
        parts = urlsplit(candidate)
        host = (parts.hostname or "").lower()
    except ValueError as exc:
        return Invalid(f"malformed URL: {exc}")
    if parts.scheme.lower() not in ("http", "https"):
        return Invalid(f"unsupported scheme {parts.scheme!r}: only http(s) URLs")
    if not host or "." not in host:
        return Invalid("URL without a host name")
    if host in YOUTUBE_HOSTS or host in SHORT_HOSTS:
        return _youtube(host, parts.path, parts.query)
    return Target(generic_id(candidate), candidate, "generic")
