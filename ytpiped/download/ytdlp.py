"""The blocking yt-dlp calls (run them in a thread): audio-only download and flat listing.

yt-dlp writes `<name>.part` and renames it when complete, so a file named
`DATA/audio/<id>.<ext>` is always whole. Its own log lines go to structlog.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ytpiped import logs
from ytpiped.audio.decode import probe_duration


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
          socket_timeout_s: float = 30.0, cookiefile: Path | None = None) -> Fetched:
    """Download the smallest audio-only format of `url` to audio_dir/<stem>.<ext>."""
    import yt_dlp

    audio_dir.mkdir(parents=True, exist_ok=True)
    opts = base_options(log, socket_timeout_s, cookiefile)
    opts.update({"format": "worstaudio/worst", "outtmpl": str(audio_dir / f"{stem}.%(ext)s"),
                 "overwrites": True, "continuedl": False})
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.extract_info(url, download=True)
        info = ydl.sanitize_info(info) if info else {}
    downloads = info.get("requested_downloads") or []
    path = Path(downloads[0]["filepath"]) if downloads else audio_dir / f"{stem}.{info['ext']}"
    duration = info.get("duration")
    if not duration:  # direct files: yt-dlp does not know; ask the container
        duration = probe_duration(path)
    return Fetched(path=path, title=info.get("title"),
                   channel=info.get("channel") or info.get("uploader"),
                   upload_date=info.get("upload_date"),
                   duration_s=float(duration) if duration else None,
                   size_bytes=path.stat().st_size)


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
    """Video URLs of a flat playlist/channel listing (nested tabs included)."""
    urls: list[str] = []
    for entry in info.get("entries") or []:
        if not entry:
            continue
        if entry.get("_type") == "playlist" or entry.get("entries"):
            urls += entry_urls(entry)
            continue
        if entry.get("ie_key", "").startswith("Youtube") and entry.get("id"):
            urls.append(f"https://www.youtube.com/watch?v={entry['id']}")
        elif entry.get("url"):
            urls.append(str(entry["url"]))
    return urls


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
