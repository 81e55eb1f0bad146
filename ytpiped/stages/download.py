"""Download stage: queued -> downloading -> downloaded (playlists, channels, feeds -> done).

yt-dlp runs in a thread. The `gate` holds each download until pacing allows it (phase
delays counted from the end of the previous download, the hourly budget, cooldowns,
backpressure from the buffer of untranscribed audio) and publishes the phase and the
next download time for `status`. Rate limits and bot checks pause every download and
put the video back without spending an attempt; so does a configured cookie file that
has gone missing, until it is back. A URL that lists several entries (a podcast feed, a
page with several players) is expanded like a playlist: one row per entry. A failed
download leaves no file behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ytpiped import logs
from ytpiped.config import Settings
from ytpiped.download import classify as cls
from ytpiped.download import cookies, ytdlp
from ytpiped.download.pacing import Buffer, Pacer
from ytpiped.errors import DISK_FULL_PAUSE_S, Cooldown, Permanent, Retryable
from ytpiped.stages.base import Context, Item, Outcome

GATE_RECHECK_S = 5.0  # re-evaluate the phase at least this often while waiting
COOKIES_RECHECK_S = 60.0  # a video that met a missing cookie file comes back after this
COOKIES_MISSING = "cookies_missing"
BOT_CHECK_ALERT = ("YouTube asks to confirm this is not a bot: downloads are paused. "
                   "Export fresh cookies from a logged-in browser to download.cookies_file "
                   "and lower download.max_videos_per_hour.")

PRIVATE_DIR = ".private"  # under the data dir: the session's cookie copies

Fetcher = Callable[..., ytdlp.Fetched | ytdlp.Listing]
Lister = Callable[..., tuple[str | None, list[str]]]


class DownloadStage:
    name = "download"

    def __init__(self, *, settings: Settings | None = None, concurrency: int = 1,
                 rng: random.Random | None = None, fetcher: Fetcher = ytdlp.fetch,
                 lister: Lister = ytdlp.flat_entries) -> None:
        self.settings = settings  # needed by start() only
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.fetcher = fetcher
        self.lister = lister
        self.pacer: Pacer | None = None
        self.warned_cookie_mode = False
        self.cleaned = False
        self.cookie_problem: str | None = None

    async def start(self) -> None:
        """Daemon start-up (data dir locked, nothing claimed yet): delete the cookie copies
        a killed daemon left in DATA/.private."""
        if self.settings is None:
            return
        n = await asyncio.to_thread(cookies.remove_stale_copies,
                                    self.settings.data_path / PRIVATE_DIR)
        if n:
            logs.get("ytpiped.download").info("stale_cookie_copies_removed", count=n)

    def _pacer(self, ctx: Context) -> Pacer:
        if self.pacer is None:
            self.pacer = Pacer(ctx.settings.download, self.rng)
        return self.pacer

    async def _restore(self, ctx: Context, pacer: Pacer) -> None:
        """A restart must not cut a rate-limit cooldown short or forget the last pause."""
        last = await ctx.last_published() or {}
        until = last.get("cooldown_until")
        if isinstance(until, int | float) and until > ctx.clock.now():
            pacer.cooldown_until = float(until)
            pacer.cooldown_kind = last.get("cooldown_kind")
            pacer.cooldown_level = int(last.get("cooldown_level") or 1)
            ctx.log.warning("cooldown_resumed", until=until, kind=pacer.cooldown_kind)
        if isinstance(last.get("last_download_end"), int | float):
            pacer.last_end = float(last["last_download_end"])
        pacer.built = bool(last.get("buffer_built", False))

    async def _buffer(self, ctx: Context) -> Buffer:
        counts = await ctx.counts()
        waiting, size = await ctx.buffer_stats()
        free = await asyncio.to_thread(_free_bytes, ctx.data_dir)
        return Buffer(queued=counts.get("queued", 0), waiting=waiting, bytes=size,
                      free_disk=free)

    async def gate(self, ctx: Context) -> None:
        pacer = self._pacer(ctx)
        if not self.cleaned:
            n = await asyncio.to_thread(ytdlp.clean_partials, ctx.data_dir / "audio")
            if n:
                ctx.log.info("partial_downloads_removed", count=n)
            await self._restore(ctx, pacer)
            self.cleaned = True
        while True:
            now = ctx.clock.now()
            buf = await self._buffer(ctx)
            if await self._cookies_missing(ctx):
                await ctx.publish(self._status("cooldown", None, now, buf))
                await ctx.clock.sleep(GATE_RECHECK_S)
                continue
            phase, at = pacer.next_at(now, buf)
            await ctx.publish(self._status(phase, at, now, buf))
            if at is not None and at <= now:
                return
            wait = GATE_RECHECK_S if at is None else min(GATE_RECHECK_S, at - now)
            await ctx.clock.sleep(max(0.01, wait))

    def _status(self, phase: str, at: float | None, now: float, buf: Buffer) -> dict[str, Any]:
        pacer = self.pacer
        assert pacer is not None
        status: dict[str, Any] = {
            "phase": phase, "next_download_at": at,
            "rate_per_hour": pacer.rate_per_hour(now),
            "buffer_videos": buf.waiting, "buffer_bytes": buf.bytes,
            "cooldown_until": pacer.cooldown_until if pacer.cooldown_until > now else None,
            "cooldown_kind": pacer.cooldown_kind if pacer.cooldown_until > now else None,
            "cooldown_level": pacer.cooldown_level,
            "last_download_end": pacer.last_end, "buffer_built": pacer.built,
        }
        alerts = []
        if self.cookie_problem is not None:
            status["cooldown_kind"] = status["cooldown_kind"] or COOKIES_MISSING
            alerts.append(self.cookie_problem)
        if status["cooldown_kind"] == cls.BOT_CHECK:
            alerts.append(BOT_CHECK_ALERT)
        if alerts:
            status["alerts"] = alerts
        return status

    async def _cookies_missing(self, ctx: Context) -> bool:
        """Hold downloads while the configured cookie file is missing or unreadable."""
        source = ctx.settings.download.cookies_file
        problem = await asyncio.to_thread(cookies.problem, source) if source else None
        if problem != self.cookie_problem:
            if problem is None:
                ctx.log.info("cookies_file_back", path=source)
            else:
                ctx.log.error("cookies_file_unusable", error=problem)
            self.cookie_problem = problem
        return problem is not None

    async def run(self, item: Item, ctx: Context) -> Outcome:
        pacer = self._pacer(ctx)
        cfg = ctx.settings.download
        audio = ctx.data_dir / "audio"
        cookie_copy: cookies.CookieCopy | None = None
        if cfg.cookies_file:
            try:
                cookie_copy = await asyncio.to_thread(self._cookie_copy, cfg.cookies_file,
                                                      ctx.data_dir / PRIVATE_DIR, ctx)
            except cookies.CookieError as exc:  # no request made: pacing is untouched
                self.cookie_problem = str(exc)
                raise Cooldown(str(exc), kind=COOKIES_MISSING,
                               until=ctx.clock.now() + COOKIES_RECHECK_S) from None
        jar = cookie_copy.path if cookie_copy is not None else None
        pacer.started(ctx.clock.now())
        try:
            if item.kind in ("playlist", "channel"):
                title, urls = await asyncio.to_thread(self.lister, item.url, ctx.log,
                                                      cfg.socket_timeout_s, jar)
                return await self._expanded(ctx, item, title, urls)
            got = await asyncio.to_thread(self.fetcher, item.url, audio, item.id, ctx.log,
                                          cfg.socket_timeout_s, jar)
            if isinstance(got, ytdlp.Listing):
                return await self._expanded(ctx, item, got.title, got.urls)
        except Exception as exc:
            now = ctx.clock.now()
            pacer.finished(now, ok=False)
            await asyncio.to_thread(ytdlp.remove_attempt_files, audio, item.id)
            raise self._decision(exc, now, pacer) from None
        finally:
            if cookie_copy is not None:
                await asyncio.to_thread(cookie_copy.close)
        pacer.finished(ctx.clock.now(), ok=True)
        ctx.log.info("video_downloaded", size=got.size_bytes, duration_s=got.duration_s)
        return Outcome(fields={"title": got.title, "channel": got.channel,
                               "upload_date": got.upload_date, "duration_s": got.duration_s,
                               "size_bytes": got.size_bytes, "audio_path": str(got.path)})

    async def _expanded(self, ctx: Context, item: Item, title: str | None,
                        urls: list[str]) -> Outcome:
        """A playlist, channel, feed or multi-entry page: queue its entries, finish it."""
        added, dup = await ctx.add_videos(urls, parent_id=item.id)
        self._pacer(ctx).finished(ctx.clock.now(), ok=True)
        ctx.log.info("playlist_expanded", kind=item.kind, videos=len(urls), added=added,
                     duplicate=dup)
        return Outcome(fields={"title": title}, finished_state="done",
                       info={"expanded": len(urls), "added": added, "duplicate": dup})

    def _decision(self, exc: Exception, now: float, pacer: Pacer) -> Exception:
        full = logs.scrub(str(exc)).removeprefix("ERROR: ").strip() or type(exc).__name__
        kind = cls.classify(full, exc)
        text = cls.tidy(full)
        if kind in cls.COOLDOWN_KINDS:
            until = pacer.enter_cooldown(now, kind)
            return Cooldown(f"{kind}: {text}", kind=kind, until=until)
        if kind == cls.DISK_FULL:
            return Cooldown(f"disk full while downloading: {text}", kind=kind,
                            until=now + DISK_FULL_PAUSE_S)
        if cls.is_permanent(kind):
            return Permanent(text, kind=kind)
        return Retryable(text, kind=kind)

    def _cookie_copy(self, source: str, private: Path, ctx: Context) -> cookies.CookieCopy:
        copy = cookies.private_copy(source, private)
        with contextlib.suppress(OSError):  # gone again since the copy: not our concern here
            if not self.warned_cookie_mode and cookies.too_open(source):
                ctx.log.warning("cookies_file_readable_by_others", path=source,
                                fix=f"chmod 600 {source}")
                self.warned_cookie_mode = True
        return copy


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free
