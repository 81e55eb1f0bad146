"""The blocking yt-dlp calls (run them in a thread): audio-only download and flat listing.

yt-dlp writes `<name>.part` and renames it when complete, so a file named
`DATA/audio/<id>.<ext>` is whole; a failed download's files are all `<id>.*` and are
removed with `remove_attempt_files`. Its own log lines go to structlog.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ytpiped import logs
from ytpiped.audio.decode import probe_duration
from ytpiped.urls import Target, canonicalise

#: yt-dlp result types that stand for several entries
PLAYLIST_TYPES = ("playlist", "multi_video")


class _Logger:
    """yt-dlp's logger interface, routed to structlog with secrets scrubbed."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger) -> None:
        self.log = log
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug] "):
            self.log.debug("ytdlp_info", message=logs.scrub(msg))

    def info(self, msg: str) -> None:
        self.log.debug("ytdlp_info", message=logs.scrub(msg))

    def warning(self, msg: str) -> None:
        self.log.warning("ytdlp_warning", message=logs.scrub(msg))

    def error(self, msg: str) -> None:
        self.errors.append(logs.scrub(msg))


@dataclass(frozen=True)
class Fetched:
    path: Path
    title: str | None
    channel: str | None
    upload_date: str | None
    duration_s: float | None
    size_bytes: int


@dataclass(frozen=True)
class Listing:
    """A URL that stands for several entries (a podcast feed, a page with several media
    players): each entry becomes a row of its own; nothing was downloaded."""

    title: str | None
    urls: list[str]


class NoMedia(Exception):
    """The URL lists no media at all (an empty feed, a page without a player)."""


def base_options(log: structlog.typing.FilteringBoundLogger, socket_timeout_s: float,
                 cookiefile: Path | None) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "quiet": True, "noprogress": True, "no_warnings": False, "logger": _Logger(log),
        "socket_timeout": socket_timeout_s, "retries": 2, "fragment_retries": 2,
        "extractor_retries": 1, "cachedir": False, "noplaylist": True,
        "color": {"stderr": "no_color", "stdout": "no_color"},
    }
    if cookiefile is not None:
        opts["cookiefile"] = str(cookiefile)
    return opts


def fetch(url: str, audio_dir: Path, stem: str, log: structlog.typing.FilteringBoundLogger,
          socket_timeout_s: float = 30.0, cookiefile: Path | None = None) -> Fetched | Listing:
    """Download the smallest audio-only format of `url` to audio_dir/<stem>.<ext>.

    A YouTube video is downloaded in one go. Any other URL is first extracted without
    downloading (yt-dlp processes that result further, so this costs no extra request):
    a podcast feed or a page with several media entries comes back as a `Listing` of
    their URLs, and nothing is downloaded."""
    import yt_dlp

    audio_dir.mkdir(parents=True, exist_ok=True)
    opts = base_options(log, socket_timeout_s, cookiefile)
    opts.update({"format": "worstaudio/worst", "outtmpl": str(audio_dir / f"{stem}.%(ext)s"),
                 "overwrites": True, "continuedl": False})
    youtube = is_youtube_video(url)
    if not youtube:
        opts["extract_flat"] = "in_playlist"  # list a feed's entries, do not resolve them
    with yt_dlp.YoutubeDL(opts) as ydl:
        if youtube:
            info = ydl.extract_info(url, download=True)
        else:
            info = ydl.extract_info(url, download=False)
            if info and info.get("_type") in PLAYLIST_TYPES:
                listing = _listing(url, info)
                if listing is not None:
                    return listing
                info = next(e for e in info["entries"] if e)  # one entry: it is the video
            info = ydl.process_ie_result(info, download=True) if info else None
        info = ydl.sanitize_info(info) if info else {}
    downloads = info.get("requested_downloads") or []
    if not downloads:
        raise NoMedia(f"no media found at {url}: yt-dlp downloaded nothing")
    path = Path(downloads[0]["filepath"])
    duration = info.get("duration")
    if not duration:  # direct files: yt-dlp does not know; ask the container
        duration = probe_duration(path)
    return Fetched(path=path, title=info.get("title"),
                   channel=info.get("channel") or info.get("uploader"),
                   upload_date=info.get("upload_date"),
                   duration_s=float(duration) if duration else None,
                   size_bytes=path.stat().st_size)


def _listing(url: str, info: dict[str, Any]) -> Listing | None:
    """The entries of a playlist-type result as a Listing; None when its only entry is the
    video itself (no URL of its own to queue)."""
    entries = [e for e in info.get("entries") or [] if e]
    if not entries:
        raise NoMedia(f"no media found at {url}: the page or feed lists no entries")
    found = [u for u in entry_urls(info) if u != url]
    if not found:
        if len(entries) == 1:
            return None
        raise NoMedia(f"no media found at {url}: none of its {len(entries)} entries has a "
                      "URL of its own")
    return Listing(title=info.get("title"), urls=found)


def is_youtube_video(url: str) -> bool:
    target = canonicalise(url)
    return isinstance(target, Target) and target.kind == "video"


def flat_entries(url: str, log: structlog.typing.FilteringBoundLogger,
                 socket_timeout_s: float = 30.0, cookiefile: Path | None = None
                 ) -> tuple[str | None, list[str]]:
    """(title, video URLs) of a playlist or channel, without downloading anything."""
    import yt_dlp

    opts = base_options(log, socket_timeout_s, cookiefile)
    opts.update({"extract_flat": "in_playlist", "noplaylist": False, "skip_download": True})
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.extract_info(url, download=False) or {}
    return info.get("title"), entry_urls(info)


def entry_urls(info: dict[str, Any]) -> list[str]:
    """Video URLs of a flat playlist/channel/feed listing (nested tabs included): a
    YouTube entry as its watch URL, a feed's entry as its enclosure URL, a page's media
    player as its media file's URL."""
    from yt_dlp.utils import unsmuggle_url

    found: list[str] = []
    for entry in info.get("entries") or []:
        if not entry:
            continue
        if entry.get("_type") == "playlist" or entry.get("entries"):
            found += entry_urls(entry)
            continue
        formats = [f for f in entry.get("formats") or [] if f.get("url")]
        if entry.get("ie_key", "").startswith("Youtube") and entry.get("id"):
            found.append(f"https://www.youtube.com/watch?v={entry['id']}")
        elif entry.get("url"):
            found.append(str(unsmuggle_url(str(entry["url"]))[0]))
        elif formats:
            found.append(str(formats[0]["url"]))
    return list(dict.fromkeys(found))


def remove_attempt_files(audio_dir: Path, stem: str) -> int:
    """Remove every file a failed download of `stem` wrote (whole or partial) -> count."""
    n = 0
    if audio_dir.is_dir():
        for p in audio_dir.iterdir():
            if p.name.startswith(f"{stem}.") and p.is_file():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    n += 1
    return n


def clean_partials(audio_dir: Path) -> int:
    """Remove leftover `.part`/`.ytdl` files of downloads a crash interrupted."""
    n = 0
    if audio_dir.is_dir():
        for p in audio_dir.iterdir():
            if p.suffix in (".part", ".ytdl") or p.name.endswith((".part-Frag", ".temp")):
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
    return n
