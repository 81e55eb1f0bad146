"""The blocking yt-dlp calls (run them in a thread): audio-only download and flat listing.

yt-dlp writes `<name>.part` and renames it when complete, so a file named
`DATA/audio/<id>.<ext>` is whole; a failed download's files are all `<id>.*` and are
removed with `remove_attempt_files`. Its own log lines go to structlog.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from ytpiped import logs
from ytpiped.audio.decode import probe_duration
from ytpiped.config import DownloadConfig
from ytpiped.download import meta
from ytpiped.download.filters import Filters
from ytpiped.download.jsruntime import JsRuntime
from ytpiped.download.meta import Track
from ytpiped.urls import Target, canonicalise

#: yt-dlp result types that stand for several entries
PLAYLIST_TYPES = ("playlist", "multi_video")


class _Logger:
    """yt-dlp's logger interface, routed to structlog with secrets scrubbed."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger) -> None:
        self.log = log
        self.errors: list[str] = []
        self.warnings: list[str] = []  # what yt-dlp warned of on the way to a failure

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug] "):
            self.log.debug("ytdlp_info", message=logs.scrub(msg))

    def info(self, msg: str) -> None:
        self.log.debug("ytdlp_info", message=logs.scrub(msg))

    def warning(self, msg: str) -> None:
        msg = logs.scrub(msg)
        self.warnings.append(msg)
        self.log.warning("ytdlp_warning", message=msg)

    def error(self, msg: str) -> None:
        self.errors.append(logs.scrub(msg))


@dataclass(frozen=True)
class Fetched:
    path: Path | None  # None: the video's subtitles stand in for its audio
    title: str | None
    channel: str | None
    upload_date: str | None
    duration_s: float | None
    size_bytes: int
    meta: dict[str, Any] = field(default_factory=dict)  # meta.metadata(): kept for export
    subtitles: list[dict[str, Any]] | None = None  # segments from the video's own subtitles
    subtitle_track: Track | None = None
    sponsor: list[dict[str, Any]] = field(default_factory=list)  # SponsorBlock segments


class Skipped(Exception):
    """A filter (download.filters.Filters, run as yt-dlp's match filter) left the video
    out before anything was downloaded."""

    def __init__(self, reason: str, info: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.meta = info


@dataclass(frozen=True)
class Listing:
    """A URL that stands for several entries (a podcast feed, a page with several media
    players): each entry becomes a row of its own; nothing was downloaded."""

    title: str | None
    urls: list[str]


class NoMedia(Exception):
    """The URL lists no media at all (an empty feed, a page without a player)."""


class DownloadFailed(Exception):
    """yt-dlp failed; its message, and the warnings it gave before (a missing JavaScript
    runtime or an unsolved challenge shows only there), for classify()."""

    def __init__(self, message: str, warnings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.warnings = warnings


@dataclass(frozen=True)
class Options:
    """What one download hands yt-dlp: the user's pass-through settings, the session's
    cookie copy and the JavaScript runtime."""

    socket_timeout_s: float = 30.0
    cookiefile: Path | None = None
    format: str = "worstaudio/worst"
    js_runtime: JsRuntime | None = None
    proxy: str = ""
    source_address: str = ""
    extractor_args: Mapping[str, Any] = field(default_factory=dict)
    sleep_requests_s: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)  # download.ytdlp_options
    abort: threading.Event | None = field(default=None, compare=False)  # stop at next report
    filters: Filters | None = None  # yt-dlp's match filter: a reason skips the video
    subtitles: str = "never"  # transcribe.youtube_subtitles
    subtitle_lang: str = ""  # wanted language ("": the video's own, else English)
    sponsorblock: tuple[str, ...] = ()  # download.sponsorblock_categories
    sponsorblock_api: str = "https://sponsor.ajay.app"
    playlistend: int | None = None  # a listing stops after this many entries

    @classmethod
    def of(cls, cfg: DownloadConfig, *, cookiefile: Path | None = None,
           js_runtime: JsRuntime | None = None,
           abort: threading.Event | None = None) -> Options:
        return cls(socket_timeout_s=cfg.socket_timeout_s, cookiefile=cookiefile,
                   format=cfg.format, js_runtime=js_runtime, proxy=cfg.proxy,
                   source_address=cfg.source_address, extractor_args=cfg.extractor_args,
                   sleep_requests_s=cfg.sleep_requests_s, extra=cfg.ytdlp_options,
                   abort=abort, sponsorblock=tuple(cfg.sponsorblock_categories),
                   sponsorblock_api=cfg.sponsorblock_api)


def base_options(log: structlog.typing.FilteringBoundLogger, options: Options
                 ) -> dict[str, Any]:
    """The YoutubeDL parameters every call shares (the extra options first, so that
    nothing ytpiped relies on can be overridden by them)."""
    opts: dict[str, Any] = dict(options.extra)
    opts.update({
        "quiet": True, "noprogress": True, "no_warnings": False, "logger": _Logger(log),
        "socket_timeout": options.socket_timeout_s, "cachedir": False, "noplaylist": True,
        "color": {"stderr": "no_color", "stdout": "no_color"},
    })
    for key, default in (("retries", 2), ("fragment_retries", 2), ("extractor_retries", 1)):
        opts.setdefault(key, default)
    if options.cookiefile is not None:
        opts["cookiefile"] = str(options.cookiefile)
    if options.js_runtime is not None:
        opts["js_runtimes"] = options.js_runtime.ytdlp_param()
    if options.proxy:
        opts["proxy"] = options.proxy
    if options.source_address:
        opts["source_address"] = options.source_address
    if options.extractor_args:
        opts["extractor_args"] = {ie: {k: list(v) for k, v in args.items()}
                                  for ie, args in options.extractor_args.items()}
    if options.sleep_requests_s:
        opts["sleep_interval_requests"] = options.sleep_requests_s
    if options.abort is not None:
        opts["progress_hooks"] = [_stopper(options.abort)]
    return opts


def _stopper(abort: threading.Event) -> Callable[[Mapping[str, Any]], None]:
    """A progress hook that ends the download at yt-dlp's next progress report once
    `abort` is set (the stage's task was cancelled): the thread does not outlive it."""
    def hook(_: Mapping[str, Any]) -> None:
        if abort.is_set():
            from yt_dlp.utils import DownloadCancelled

            raise DownloadCancelled("stopped: the download was cancelled")

    return hook


def download_options(audio_dir: Path, stem: str, log: structlog.typing.FilteringBoundLogger,
                     options: Options) -> dict[str, Any]:
    """The YoutubeDL parameters of one audio download, exactly as `fetch` uses them."""
    opts = base_options(log, options)
    opts.update({"format": options.format, "outtmpl": str(audio_dir / f"{stem}.%(ext)s"),
                 "overwrites": True, "continuedl": False})
    return opts


def fetch(url: str, audio_dir: Path, stem: str, log: structlog.typing.FilteringBoundLogger,
          options: Options | None = None) -> Fetched | Listing:
    """Download the smallest audio-only format of `url` to audio_dir/<stem>.<ext>.

    A YouTube video is downloaded in one go. Any other URL is first extracted without
    downloading (yt-dlp processes that result further, so this costs no extra request):
    a podcast feed or a page with several media entries comes back as a `Listing` of
    their URLs, and nothing is downloaded."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    opts = download_options(audio_dir, stem, log, options or Options())
    try:
        return _fetch(url, opts, options or Options())
    except Skipped:
        raise
    except Exception as exc:
        warned = tuple(opts["logger"].warnings)
        raise DownloadFailed(str(exc), warned) from exc


def _fetch(url: str, opts: dict[str, Any], options: Options) -> Fetched | Listing:
    import yt_dlp

    youtube = is_youtube_video(url)
    if not youtube:
        opts["extract_flat"] = "in_playlist"  # list a feed's entries, do not resolve them
    skipped: list[str] = []
    if options.filters is not None and options.filters.active:
        opts["match_filter"] = _recorder(options.filters, skipped)
    with yt_dlp.YoutubeDL(opts) as ydl:
        if youtube and options.sponsorblock:
            from yt_dlp.postprocessor.sponsorblock import SponsorBlockPP

            # after the match filter, as yt-dlp's --sponsorblock-mark runs it: a skipped
            # video costs no SponsorBlock request
            ydl.add_post_processor(SponsorBlockPP(ydl, list(options.sponsorblock),
                                                  options.sponsorblock_api),
                                   when="after_filter")
        if youtube:  # one extraction; the match filter runs when yt-dlp processes it
            raw = ydl.extract_info(url, download=False, process=False)
        else:
            raw = ydl.extract_info(url, download=False)
            if raw and raw.get("_type") in PLAYLIST_TYPES:
                listing = _listing(url, raw)
                if listing is not None:
                    return listing
                raw = next(e for e in raw["entries"] if e)  # one entry: it is the video
        if not raw:
            raise NoMedia(f"no media found at {url}: yt-dlp extracted nothing")
        picked = meta.pick_subtitles(raw, options.subtitles, options.subtitle_lang or str(
            raw.get("language") or "en")) if youtube else None
        spare = copy.deepcopy(raw) if picked is not None else None
        # the match filter, SponsorBlock and the format choice; the audio only when no
        # subtitles stand in for it
        info = ydl.process_ie_result(raw, download=picked is None)
        if skipped:
            raise Skipped(skipped[0], meta.metadata(ydl.sanitize_info(info)))
        subtitles: list[dict[str, Any]] | None = None
        if picked is not None:
            with ydl.urlopen(picked.url) as resp:
                subtitles = meta.parse_vtt(resp.read().decode("utf-8", "replace")) or None
            if subtitles is None:  # an empty track: Whisper after all
                picked = None
                info = ydl.process_ie_result(spare, download=True)
        track = picked
        info = ydl.sanitize_info(info)
    sponsor = [{"start": float(c["start_time"]), "end": float(c["end_time"]),
                "category": c.get("category")} for c in info.get("sponsorblock_chapters") or []]
    kept = meta.metadata(info)
    duration = info.get("duration")
    path: Path | None = None
    if subtitles is None:
        downloads = info.get("requested_downloads") or []
        if not downloads:
            raise NoMedia(f"no media found at {url}: yt-dlp downloaded nothing")
        path = Path(downloads[0]["filepath"])
        if not duration:  # direct files: yt-dlp does not know; ask the container
            duration = probe_duration(path)
    return Fetched(path=path, title=info.get("title"),
                   channel=info.get("channel") or info.get("uploader"),
                   upload_date=info.get("upload_date"),
                   duration_s=float(duration) if duration else None,
                   size_bytes=path.stat().st_size if path is not None else 0, meta=kept,
                   subtitles=subtitles, subtitle_track=track, sponsor=sponsor)


def _recorder(filters: Filters, found: list[str]) -> Callable[..., str | None]:
    """yt-dlp's match_filter: the filters' reason, also kept in `found` (yt-dlp only logs it)."""
    def match(info: Mapping[str, Any], *, incomplete: Any = False) -> str | None:
        # True: a flat listing's entry; a set: only the format's fields are missing yet
        flat = incomplete is True
        reason = filters.reason(info, incomplete=flat)
        if reason is not None and not flat:
            found.append(reason)
        return reason

    return match


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
                 options: Options | None = None) -> tuple[str | None, list[str]]:
    """(title, video URLs) of a playlist or channel, without downloading anything."""
    import yt_dlp

    opts = base_options(log, options or Options())
    opts.update({"extract_flat": "in_playlist", "noplaylist": False, "skip_download": True})
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False) or {}
    except Exception as exc:
        raise DownloadFailed(str(exc), tuple(opts["logger"].warnings)) from exc
    return info.get("title"), entry_urls(info)


def newest_entries(url: str, log: structlog.typing.FilteringBoundLogger, options: Options,
                   seen: Sequence[str], limit: int) -> tuple[str | None, list[str]]:
    """(title, entry URLs newest first) of a followed channel, playlist or feed: a flat
    listing, read lazily and left at the first entry already `seen` or after `limit`
    entries, so an unchanged source costs its first listing page only."""
    import yt_dlp

    opts = base_options(log, options)
    opts.update({"extract_flat": "in_playlist", "noplaylist": False, "skip_download": True,
                 "playlistend": limit})
    known = set(seen)
    found: list[str] = []
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False, process=False) or {}
            for entry in info.get("entries") or []:
                urls = entry_urls({"entries": [entry]}) if entry else []
                if any(u in known for u in urls) or len(found) >= limit:
                    break
                found += urls
    except Exception as exc:
        raise DownloadFailed(str(exc), tuple(opts["logger"].warnings)) from exc
    return info.get("title"), list(dict.fromkeys(found))


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


@dataclass(frozen=True)
class JsCheck:
    """What yt-dlp itself says about the JavaScript runtime a download would use."""

    name: str | None  # yt-dlp's runtime key (deno, node, bun, quickjs)
    path: str | None
    version: str | None  # from running the runtime (`--version`), None when it did not run
    supported: bool  # yt-dlp accepts this version
    solver: str | None  # where the challenge-solver scripts came from ("python package")
    ran: bool  # the runtime ran the solver scripts
    problem: str | None = None


JS_PROBE = "const n = 6 * 7;"


def check_js_runtime(options: Options, log: structlog.typing.FilteringBoundLogger) -> JsCheck:
    """Build the YoutubeDL a download builds and ask yt-dlp which JavaScript runtime it
    found (yt-dlp runs it with `--version`), then have YouTube's challenge provider for it
    run the solver scripts of yt-dlp-ejs, with yt-dlp's own flags, on a tiny program.
    Offline: nothing is fetched. Uses yt-dlp internals; any surprise is a `problem`."""
    import json

    import yt_dlp

    opts = base_options(log, options)
    name = options.js_runtime.name if options.js_runtime else "deno"
    with yt_dlp.YoutubeDL(opts) as ydl:
        runtime = ydl._js_runtimes.get(name)
        info = runtime.info if runtime is not None else None
        if info is None:
            why = "not enabled" if runtime is None else "it gave no version"
            return JsCheck(name, options.js_runtime.path if options.js_runtime else None,
                           None, False, None, False, f"yt-dlp could not run {name} ({why})")
        found = JsCheck(name, info.path, info.version, bool(info.supported), None, False)
        if not info.supported:
            return replace(found, problem=f"yt-dlp does not support {info.name} "
                                          f"{info.version} (too old)")
        try:
            from yt_dlp.extractor.youtube.jsc._director import initialize_jsc_director

            director = initialize_jsc_director(ydl.get_info_extractor("Youtube"))
            provider = next((p for p in director.providers.values()
                             if getattr(p, "JS_RUNTIME_NAME", None) == name), None)
            if provider is None or not provider.is_available():
                return replace(found, problem=f"yt-dlp has no usable challenge provider "
                                              f"for {name}")
            lib, core = provider._lib_script, provider._core_script
            out = provider._run_js_runtime(
                f"{lib.code}\nObject.assign(globalThis, lib);\n{core.code}\n"
                f"console.log(JSON.stringify({{jsc: typeof jsc, code: "
                f"astring.generate(meriyah.parse({json.dumps(JS_PROBE)}))}}));\n")
            got = json.loads(out.strip().splitlines()[-1])
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return replace(found, problem=logs.scrub(first))
        ran = got.get("jsc") == "function" and "6 * 7" in str(got.get("code"))
        return JsCheck(name, info.path, info.version, True, lib.source.value, ran,
                       None if ran else f"unexpected output from the solver scripts: {out[:200]}")


def ytdlp_version() -> str:
    from yt_dlp.version import __version__

    return str(__version__)
