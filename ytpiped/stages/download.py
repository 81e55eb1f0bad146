"""Download stage: queued -> downloading -> downloaded (playlists, channels, feeds -> done).

yt-dlp runs in a thread. The `gate` holds each download until pacing allows it (phase
delays counted from the end of the previous download, the hourly budget, cooldowns,
backpressure from the buffer of untranscribed audio) and publishes the phase and the
next download time for `status`. Rate limits and bot checks pause every download and
put the video back without spending an attempt; so does a configured cookie file that
has gone missing, until it is back. A live event or premiere that has not started waits
past its start, spending nothing. A URL that lists several entries (a podcast feed, a
page with several players) is expanded like a playlist: one row per entry. A failed
download leaves no file behind.

yt-dlp gets the user's pass-through settings (download.format, proxy, extractor_args, …)
and the JavaScript runtime's path explicitly (download.js_runtime). The circuit breaker
(ytpiped.download.breaker) pauses every download when many videos in a row fail for a
reason that is not their own, gives the attempts they spent back, and probes later;
`ytpiped pause|resume download` hold and release downloads.

Pacing and the breaker belong to a pacing group (download.pacing_group, by default this
host alone): their state lives in the store (`pacing:GROUP`), every change to it is made
under the store's lock on that entry, and a download starts only when it is the group's
turn, so hosts that download through one IP address or account keep its delays between
them. URLs on other hosts (a podcast feed's entries, or added directly) are not YouTube's
to pace: each host gets its own pause (download.other_hosts_delay_s), and while YouTube's
pacing or breaker waits, the gate lets the worker claim only such entries (`claim_only`);
a followed feed is listed by its own host's pacing too, also while YouTube waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ytpiped import logs, metrics
from ytpiped import transcription as tx
from ytpiped.download import classify as cls
from ytpiped.download import cookies, jsruntime, ytdlp
from ytpiped.download import follows as fl
from ytpiped.download.breaker import CLOSED, Breaker
from ytpiped.download.filters import Filters
from ytpiped.download.meta import without_ranges
from ytpiped.download.pacing import Buffer, OtherHosts, Pacer, url_host
from ytpiped.errors import DISK_FULL_PAUSE_S, Cooldown, Permanent, Retryable
from ytpiped.files import atomic_write_json
from ytpiped.paths import DataDir
from ytpiped.stages.base import Context, Item, Outcome, StageBase
from ytpiped.store.factory import host_id
from ytpiped.store.model import is_other_host

T = TypeVar("T")

SOURCE_SUBTITLES = "youtube_subtitles"  # a transcript's `source`; Whisper's is "whisper"
OTHER_HOSTS = "other_hosts"  # the claim class of entries on hosts that are not YouTube
GATE_RECHECK_S = 5.0  # re-evaluate the phase at least this often while waiting
FOLLOW_LEASE_S = 900.0  # a source being listed by one host is not listed by another
COOKIES_MISSING = "cookies_missing"
BOT_CHECK_ALERT = ("YouTube asks to confirm this is not a bot: downloads are paused. "
                   "Export fresh cookies from a logged-in browser to download.cookies_file "
                   "and lower download.max_videos_per_hour.")

NEXT_STEPS = ("Next: run `ytpiped doctor`, upgrade yt-dlp (pip install -U \"yt-dlp[default]\") "
              "or refresh download.cookies_file; `ytpiped resume download` resumes at once.")
#: what a breaker's common error kind usually means
CAUSES = {
    cls.JS_CHALLENGE: "YouTube's JavaScript challenges went unsolved (the JavaScript runtime "
                      "or yt-dlp-ejs is missing or outdated).",
    cls.FORMAT_UNAVAILABLE: "YouTube offered no usable format (usually an outdated yt-dlp, or "
                            "an unsolved JavaScript challenge).",
    cls.PO_TOKEN: "YouTube refused the media without a PO token (see the README on PO "
                  "tokens: ytpiped[pot]).",
    cls.FORBIDDEN: "the server answers 403 Forbidden.",
    cls.NETWORK: "the network or the server is down.",
}

Fetcher = Callable[..., ytdlp.Fetched | ytdlp.Listing]
Lister = Callable[..., tuple[str | None, list[str]]]
Newest = Callable[..., tuple[str | None, list[str]]]


class DownloadStage(StageBase):
    name = "download"

    def __init__(self, *, concurrency: int = 1, rng: random.Random | None = None,
                 fetcher: Fetcher = ytdlp.fetch, lister: Lister = ytdlp.flat_entries,
                 newest: Newest = ytdlp.newest_entries) -> None:
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.fetcher = fetcher
        self.lister = lister
        self.newest = newest
        self.pacer: Pacer | None = None
        self.other: OtherHosts | None = None  # pacing of hosts that are not YouTube
        # what the gate let through: None (YouTube's turn: any row) or "other_hosts" (only
        # other hosts' entries: YouTube's pacing or breaker waits); the worker's claim reads it
        self.claim_only: str | None = None
        self.breaker: Breaker | None = None
        self.warned_cookie_mode = False
        self.cookie_problem: str | None = None
        self.js: jsruntime.Found | None = None  # the runtime handed to yt-dlp
        self.js_status: dict[str, Any] | None = None  # what yt-dlp said of it (status)
        self.ytdlp_version: str | None = None
        self.inflight = 0  # downloads running now (a probe runs alone)

    async def start(self, ctx: Context) -> None:
        """Daemon start-up (data dir locked, nothing claimed yet): delete the cookie copies
        and partial downloads a killed daemon left, restore the pacing state the last daemon
        published, and ask yt-dlp whether the JavaScript runtime runs."""
        n = await asyncio.to_thread(cookies.remove_stale_copies, DataDir(ctx.data_dir).private_dir)
        if n:
            ctx.log.info("stale_cookie_copies_removed", count=n)
        n = await asyncio.to_thread(ytdlp.clean_partials, DataDir(ctx.data_dir).audio_dir)
        if n:
            ctx.log.info("partial_downloads_removed", count=n)
        pacer = self._pacer(ctx)
        await self._restore(ctx, pacer)
        # downloads this host had in flight died with its last daemon
        await self._in_group(ctx, lambda: pacer.forget(_host_prefix(ctx.owner)))
        await self._check_runtime(ctx)

    def _other(self, ctx: Context) -> OtherHosts:
        if self.other is None:
            self.other = OtherHosts(ctx.settings.download, self.rng)
        return self.other

    async def _other_turn(self, ctx: Context, host: str) -> None:
        """Wait for the pause after the previous download from `host` (not YouTube), and
        mark this one started."""
        other = self._other(ctx)
        while (at := other.next_at(ctx.clock.now(), host)) > ctx.clock.now():
            await ctx.clock.sleep(max(0.01, min(GATE_RECHECK_S, at - ctx.clock.now())))
        other.started(ctx.clock.now(), host)

    def _pacer(self, ctx: Context) -> Pacer:
        if self.pacer is None:
            self.pacer = Pacer(ctx.settings.download, self.rng)
        return self.pacer

    def _breaker(self, ctx: Context) -> Breaker:
        if self.breaker is None:
            cfg = ctx.settings.download
            self.breaker = Breaker(cfg.breaker_threshold, cfg.breaker_cooldown_s,
                                   cfg.breaker_max_cooldown_s)
        return self.breaker

    async def _in_group(self, ctx: Context, step: Callable[[], T]) -> T:
        """Run `step` on the pacing group's state (pacer and breaker), read from the store
        and written back under its lock on it; before any group exists, this host's own
        state becomes the group's."""
        pacer, breaker = self._pacer(ctx), self._breaker(ctx)
        group = ctx.settings.download.pacing_group or host_id(ctx.settings)
        out: list[T] = []

        def change(value: Any) -> dict[str, Any]:
            if isinstance(value, dict):
                pacer.take_shared(value.get("pacer"))
                breaker.restore(value.get("breaker"))
            out[:] = [step()]
            return {"pacer": pacer.shared(), "breaker": breaker.to_json()}

        await ctx.update_shared(f"pacing:{group}", change)
        return out[0]

    async def _runtime(self, ctx: Context) -> jsruntime.Found:
        if self.js is None:
            self.js = await asyncio.to_thread(jsruntime.resolve,
                                              ctx.settings.download.js_runtime)
            if self.js.problem is not None:
                ctx.log.error("js_runtime_missing", error=self.js.problem)
        return self.js

    async def _check_runtime(self, ctx: Context) -> None:
        """Once per daemon: ask yt-dlp itself whether the runtime runs (for status)."""
        found = await self._runtime(ctx)
        options = ytdlp.Options.of(ctx.settings.download, js_runtime=found.runtime)
        try:
            check = await asyncio.to_thread(ytdlp.check_js_runtime, options, ctx.log)
            self.ytdlp_version = await asyncio.to_thread(ytdlp.ytdlp_version)
        except Exception as exc:  # yt-dlp internals changed: say so, do not stop downloads
            check = ytdlp.JsCheck(None, None, None, False, None, False,
                                  logs.scrub(str(exc)) or type(exc).__name__)
        problem = found.problem or check.problem
        self.js_status = {"name": check.name, "path": check.path, "version": check.version,
                          "ok": problem is None and check.ran, "problem": problem}
        if problem is None and check.ran:
            ctx.log.info("js_runtime_found", runtime=check.name, path=check.path,
                         version=check.version, ytdlp=self.ytdlp_version)
        elif found.problem is None:
            ctx.log.error("js_runtime_unusable", runtime=check.name, path=check.path,
                          error=problem)

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
        breaker = self._breaker(ctx)
        breaker.restore(last.get("breaker"))
        if breaker.state != CLOSED or breaker.held:
            ctx.log.warning("downloads_still_paused", state=breaker.state, held=breaker.held,
                            kind=breaker.kind, probe_at=breaker.probe_at)

    async def _apply_request(self, ctx: Context) -> None:
        """`ytpiped pause|resume download`, once each, even when made while stopped."""
        req = await ctx.operator_request()
        if not req or not isinstance(req.get("at"), int | float):
            return
        breaker = self._breaker(ctx)
        change = await self._in_group(
            ctx, lambda: breaker.request(str(req.get("action")), float(req["at"])))
        if change == "resumed":
            ctx.log.info("downloads_resumed", by="operator")
            await ctx.record_event("downloads_resumed", message="ytpiped resume download")
        elif change == "held":
            ctx.log.warning("downloads_held", by="operator")
            await ctx.record_event("downloads_held", message="ytpiped pause download")

    async def _buffer(self, ctx: Context) -> Buffer:
        counts = await ctx.counts()
        waiting, size = await ctx.buffer_stats()
        free = await asyncio.to_thread(_free_bytes, ctx.data_dir)
        return Buffer(queued=counts.get("queued", 0), waiting=waiting, bytes=size,
                      free_disk=free)

    async def gate(self, ctx: Context) -> None:
        """Return when YouTube's pacing allows a download (`claim_only` None: any row), or,
        while it or its breaker waits, as soon as an entry on another host is due
        (`claim_only` "other_hosts": each is paced by its own host in `run`), unless the
        buffer is full or downloads are held."""
        self._pacer(ctx)
        breaker = self._breaker(ctx)
        self.claim_only = None
        while True:
            await self._apply_request(ctx)
            now = ctx.clock.now()
            buf = await self._buffer(ctx)
            if await self._cookies_missing(ctx):
                await ctx.publish(self._status("cooldown", None, now, buf))
                await ctx.clock.sleep(GATE_RECHECK_S)
                continue
            blocked, phase, at = await self._in_group(ctx, partial(self._gate_step, now, buf))
            if blocked:
                probe = breaker.probe_at if not breaker.held else None
                await ctx.publish(self._status("paused", probe, now, buf))
                wait = GATE_RECHECK_S if probe is None else min(GATE_RECHECK_S, probe - now)
                # YouTube's breaker is open: a feed on another host is still listed
                if not breaker.held and await self._check_follow(ctx, now, youtube=False):
                    continue
            else:
                await ctx.publish(self._status(phase, at, now, buf))
                if await self._check_follow(ctx, now, youtube=True):
                    continue  # a listing request was made: the next one waits its turn
                if at is not None and at <= now:
                    return
                wait = GATE_RECHECK_S if at is None else min(GATE_RECHECK_S, at - now)
            if not self._pacer(ctx).full(buf) and not breaker.held:
                due = await ctx.next_ready_at(OTHER_HOSTS)
                if due is not None and due <= now:
                    self.claim_only = OTHER_HOSTS  # not YouTube's to hold
                    return
                if due is not None:
                    wait = min(wait, due - now)
            await ctx.clock.sleep(max(0.01, wait))

    def _gate_step(self, now: float, buf: Buffer) -> tuple[bool, str, float | None]:
        """(blocked by the breaker, phase, next download time) for the group's state."""
        pacer, breaker = self.pacer, self.breaker
        assert pacer is not None and breaker is not None
        if breaker.blocks(now, busy=self.inflight > 0 or bool(pacer.inflight)):
            return True, "paused", None
        return False, *pacer.next_at(now, buf)

    async def _take_turn(self, ctx: Context, holder: str) -> None:
        """Wait until this download may start by the group's pacing, and mark it started
        (the gate said so already unless another host of the group came first)."""
        pacer, breaker = self._pacer(ctx), self._breaker(ctx)

        def turn(now: float, buf: Buffer) -> float | None:
            if breaker.blocks(now, busy=bool(pacer.inflight)):
                return breaker.probe_at if not breaker.held and breaker.probe_at else \
                    now + GATE_RECHECK_S
            return pacer.turn(now, buf, holder, self.concurrency)

        while True:
            now, buf = ctx.clock.now(), await self._buffer(ctx)
            at = await self._in_group(ctx, partial(turn, now, buf))
            if at is None:
                return
            await ctx.clock.sleep(max(0.01, min(GATE_RECHECK_S, at - now)))

    async def _check_follow(self, ctx: Context, now: float, *, youtube: bool) -> bool:
        """List the most overdue followed source whose pacing allows a request now (a
        YouTube channel or playlist: YouTube's, and only when `youtube`; a feed on another
        host: that host's own); -> True when a listing was made. New entries become video
        rows."""
        pacer, other = self._pacer(ctx), self._other(ctx)
        youtube = youtube and pacer.listing_at(now) <= now

        def allowed(f: fl.Follow) -> bool:
            if is_other_host(f.kind):  # a feed or page on another host
                return other.next_at(now, url_host(f.url)) <= now
            return youtube

        follows = fl.parse_all({k: (v, 0.0) for k, v in (await ctx.follows()).items()})
        follow = fl.due([f for f in follows if allowed(f)], now)
        if follow is None:
            return False
        cfg = ctx.settings.sources
        interval = cfg.follow_interval_h * 3600.0
        taken: list[fl.Follow | None] = [None]

        def take(value: Any) -> Any:
            stored, taken[0] = fl.claim(value, now, min(interval, FOLLOW_LEASE_S))
            return stored

        await ctx.update_shared(follow.key, take)  # exactly one host lists it
        follow = taken[0]
        if follow is None:  # another host of this store took it first, or unfollowed
            return False
        found = await self._runtime(ctx)
        options = ytdlp.Options.of(ctx.settings.download, js_runtime=found.runtime)
        log = ctx.log.bind(source=follow.id)
        holder = f"{ctx.owner}/follow:{follow.id}"
        host = url_host(follow.url) if is_other_host(follow.kind) else None
        if host is not None:  # another host's feed: its own pacing, YouTube's untouched
            other.started(now, host)
        else:
            await self._in_group(ctx, lambda: pacer.started(now, holder))
        try:
            title, urls = await asyncio.to_thread(
                self.newest, follow.url, log, options, follow.seen, cfg.follow_max_entries)
        except Exception as exc:
            end = ctx.clock.now()
            full = logs.scrub(str(exc)).removeprefix("ERROR: ").strip() or type(exc).__name__
            warned = exc.warnings if isinstance(exc, ytdlp.DownloadFailed) else ()
            kind = cls.classify(full, exc, warned)

            def failed() -> None:
                pacer.finished(end, False, holder)
                if kind in cls.COOLDOWN_KINDS:
                    pacer.enter_cooldown(end, kind, holder)

            if host is not None:  # the feed is checked again after its interval
                other.finished(end, host)
            else:
                await self._in_group(ctx, failed)
            log.warning("follow_check_failed", kind=kind, error=cls.tidy(full))
            await ctx.save_follow(follow.key, fl.checked(follow, end, interval,
                                                         error=f"{kind}: {cls.tidy(full)}")
                                  .to_json())
            return True
        end = ctx.clock.now()
        if host is not None:
            other.finished(end, host)
        else:
            await self._in_group(ctx, lambda: pacer.finished(end, True, holder))
        new = fl.new_entries(urls, follow.seen)
        added = 0
        if new:
            added, _ = await ctx.add_videos(list(reversed(new)), parent_id=follow.id)
        log.info("follow_checked", listed=len(urls), new=len(new), added=added)
        await ctx.save_follow(follow.key, fl.checked(follow, end, interval, title=title,
                                                     new=new, added=added).to_json())
        return True

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
        breaker = self.breaker
        assert breaker is not None
        status.update({"ytdlp_version": self.ytdlp_version, "js_runtime": self.js_status,
                       "breaker": breaker.to_json()})
        alerts = []
        if self.cookie_problem is not None:
            status["cooldown_kind"] = status["cooldown_kind"] or COOKIES_MISSING
            alerts.append(self.cookie_problem)
        if status["cooldown_kind"] == cls.BOT_CHECK:
            alerts.append(BOT_CHECK_ALERT)
        if breaker.held:
            alerts.append("downloads are held by `ytpiped pause download`; `ytpiped resume "
                          "download` releases them.")
        elif breaker.state != CLOSED:
            alerts.append(self._breaker_alert(breaker))
        if self.js_status is not None and not self.js_status["ok"]:
            alerts.append(f"no usable JavaScript runtime for YouTube: "
                          f"{self.js_status['problem']}; YouTube downloads will fail. Run "
                          "`ytpiped doctor`.")
        if alerts:
            status["alerts"] = alerts
        return status

    @staticmethod
    def _breaker_alert(breaker: Breaker) -> str:
        n = len(breaker.failures)
        kind = breaker.kind or "download_error"
        probe = "-" if breaker.probe_at is None else time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(breaker.probe_at))
        return (f"downloads paused by the circuit breaker: {n} downloads in a row, of "
                f"different videos, failed with {kind} (last: \"{breaker.error}\"). "
                f"{CAUSES.get(kind, '')} The attempts they spent were given back; one probe "
                f"download runs at {probe}. {NEXT_STEPS}").replace("  ", " ")

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
        self.inflight += 1
        try:
            return await self._run(item, ctx)
        finally:
            self.inflight -= 1

    async def _run(self, item: Item, ctx: Context) -> Outcome:
        pacer = self._pacer(ctx)
        cfg = ctx.settings.download
        audio = DataDir(ctx.data_dir).audio_dir
        cookie_copy: cookies.CookieCopy | None = None
        if cfg.cookies_file:
            try:
                cookie_copy = await asyncio.to_thread(self._cookie_copy, cfg.cookies_file,
                                                      DataDir(ctx.data_dir).private_dir, ctx)
            except cookies.CookieError as exc:  # no request made: pacing is untouched
                # the gate holds every download while the file is missing, so the video is
                # due again at the gate's next look: it goes on as soon as the file is back
                self.cookie_problem = str(exc)
                raise Cooldown(str(exc), kind=COOKIES_MISSING,
                               until=ctx.clock.now() + GATE_RECHECK_S) from None
        jar = cookie_copy.path if cookie_copy is not None else None
        found = await self._runtime(ctx)
        abort = threading.Event()  # set when this run is cancelled: yt-dlp stops too
        options = replace(ytdlp.Options.of(cfg, cookiefile=jar, js_runtime=found.runtime,
                                           abort=abort),
                          filters=await self._filters(ctx, item),
                          subtitles="never" if item.info.get("retranscribe") else
                          ctx.settings.transcribe.youtube_subtitles,
                          subtitle_lang=ctx.settings.transcribe.language)
        holder = f"{ctx.owner}/{item.id}"
        other = url_host(item.url) if other_host(item) else None
        if other is not None:  # a feed's episode: its host's own pacing, not YouTube's
            await self._other_turn(ctx, other)
        else:
            await self._take_turn(ctx, holder)
        try:
            if item.kind in ("playlist", "channel"):
                title, urls = await asyncio.to_thread(self.lister, item.url, ctx.log, options)
                return await self._expanded(ctx, item, title, urls, holder, other)
            got = await asyncio.to_thread(self.fetcher, item.url, audio, item.id, ctx.log,
                                          options)
            if isinstance(got, ytdlp.Listing):
                return await self._expanded(ctx, item, got.title, got.urls, holder, other)
        except asyncio.CancelledError:
            abort.set()  # yt-dlp's thread ends at its next progress report
            if other is not None:
                self._other(ctx).finished(ctx.clock.now(), other)
            else:
                with contextlib.suppress(Exception):  # the group's turn goes on
                    await self._in_group(ctx, lambda: pacer.inflight.pop(holder, None))
            raise
        except ytdlp.Skipped as skip:  # one extraction, no audio: the request counts
            await self._ended(ctx, other, holder, ok=True, probe=False)
            return await self._skipped(ctx, item, skip)
        except Exception as exc:
            now = ctx.clock.now()
            await asyncio.to_thread(ytdlp.remove_attempt_files, audio, item.id)
            raise await self._decision(ctx, item, exc, now, holder, other) from None
        finally:
            if cookie_copy is not None:
                await asyncio.to_thread(cookie_copy.close)
        closed = await self._ended(ctx, other, holder, ok=True)
        await self._succeeded(ctx, closed)
        data = DataDir(ctx.data_dir)
        await asyncio.to_thread(atomic_write_json, data.meta(item.id), got.meta)
        fields = {"title": got.title, "channel": got.channel, "upload_date": got.upload_date,
                  "duration_s": got.duration_s}
        info: dict[str, Any] = {"meta": got.meta, "sponsorblock": got.sponsor}
        if got.subtitles is not None:
            return await self._from_subtitles(ctx, item, got, fields, info)
        assert got.path is not None
        ctx.log.info("video_downloaded", size=got.size_bytes, duration_s=got.duration_s)
        metrics.video_downloaded(got.size_bytes, got.duration_s)
        return Outcome(fields={**fields, "size_bytes": got.size_bytes,
                               "audio_path": data.relative(got.path)}, info=info)

    async def _filters(self, ctx: Context, item: Item) -> Filters | None:
        """The filters for this video: none once `ytpiped retry` queued it although they
        skipped it (info.unfiltered), else the global ones under its source's own."""
        if item.info.get("unfiltered"):
            return None
        return Filters.of(ctx.settings.sources, await self._source_filters(ctx, item))

    async def _source_filters(self, ctx: Context, item: Item) -> dict[str, Any]:
        """The filters of the followed source that added this video, if any."""
        if item.parent_id is None:
            return {}
        got = (await ctx.follows()).get(fl.PREFIX + item.parent_id)
        return dict(got.get("filters") or {}) if isinstance(got, dict) else {}

    async def _skipped(self, ctx: Context, item: Item, skip: ytdlp.Skipped) -> Outcome:
        """A filter left the video out: `skipped`, with the reason and its metadata."""
        await asyncio.to_thread(atomic_write_json, DataDir(ctx.data_dir).meta(item.id),
                                skip.meta)
        ctx.log.info("video_skipped", reason=skip.reason)
        return Outcome(fields={"title": skip.meta.get("title"),
                               "channel": skip.meta.get("channel"),
                               "upload_date": skip.meta.get("upload_date"),
                               "duration_s": skip.meta.get("duration")},
                       info={"meta": skip.meta, "skipped": skip.reason},
                       finished_state="skipped")

    async def _from_subtitles(self, ctx: Context, item: Item, got: ytdlp.Fetched,
                              fields: dict[str, Any], info: dict[str, Any]) -> Outcome:
        """The video's own subtitles are its transcript: written here, Whisper skipped."""
        assert got.subtitles is not None and got.subtitle_track is not None
        track = got.subtitle_track
        ranges = [(s["start"], s["end"]) for s in got.sponsor]
        segments = without_ranges(got.subtitles, ranges)
        doc = {"video_id": item.id, "title": got.title, "channel": got.channel,
               "language": track.lang, "duration_s": got.duration_s or 0.0,
               "source": SOURCE_SUBTITLES, "subtitles": {"lang": track.lang,
                                                         "automatic": track.automatic},
               "model": "", "device": [], "segments": segments, "chunks": [],
               "chapters": got.meta.get("chapters") or [], "sponsorblock": got.sponsor}
        data = DataDir(ctx.data_dir)
        written = await asyncio.to_thread(tx.write_outputs, data.transcripts_dir, item.id, doc,
                                          ctx.settings.transcribe.output_formats)
        words = sum(len(s["text"].split()) for s in segments)
        ctx.log.info("subtitles_used", lang=track.lang, automatic=track.automatic,
                     segments=len(segments))
        await ctx.record_event("transcript_made", kind=SOURCE_SUBTITLES,
                               message=f"{track.lang} subtitles"
                                       + (" (automatic)" if track.automatic else ""))
        info["transcript"] = {"paths": [data.relative(p) for p in written.values()],
                              "language": track.lang, "segments": len(segments),
                              "words": words, "source": SOURCE_SUBTITLES}
        return Outcome(fields=fields, info=info, finished_state="transcribed")

    async def _expanded(self, ctx: Context, item: Item, title: str | None,
                        urls: list[str], holder: str, other: str | None) -> Outcome:
        """A playlist, channel, feed or multi-entry page: queue its entries, finish it."""
        added, dup = await ctx.add_videos(urls, parent_id=item.id)
        # a listing downloads no media, so it says nothing to the breaker either way
        pacer, now = self._pacer(ctx), ctx.clock.now()
        if other is not None:
            self._other(ctx).finished(now, other)
        else:
            await self._in_group(ctx, lambda: pacer.finished(now, True, holder))
        ctx.log.info("playlist_expanded", kind=item.kind, videos=len(urls), added=added,
                     duplicate=dup)
        return Outcome(fields={"title": title}, finished_state="done",
                       info={"expanded": len(urls), "added": added, "duplicate": dup})

    async def _succeeded(self, ctx: Context, closed: bool) -> None:
        """After a download that succeeded; `closed`: it closed the breaker (a probe)."""
        if closed:
            ctx.log.info("downloads_resumed", by="probe")
            await ctx.record_event("downloads_resumed", message="the probe download succeeded")
            await self._publish_now(ctx)

    async def _publish_now(self, ctx: Context) -> None:
        """Publish the breaker's change at once (a restart must find it)."""
        now = ctx.clock.now()
        pacer, breaker = self._pacer(ctx), self._breaker(ctx)
        buf = await self._buffer(ctx)
        blocked = breaker.held or breaker.state != CLOSED
        phase, at = ("paused", breaker.probe_at) if blocked else pacer.next_at(now, buf)
        await ctx.publish(self._status(phase, at, now, buf))

    async def _ended(self, ctx: Context, other: str | None, holder: str, *, ok: bool,
                     probe: bool = True) -> bool:
        """A request of this stage ended well: its pacing notes the time (another host's
        own, or the group's under its lock); -> True when that closed the breaker (a probe
        download succeeded; `probe=False`: a request that says nothing of downloads)."""
        pacer, breaker, now = self._pacer(ctx), self._breaker(ctx), ctx.clock.now()
        if other is not None:  # another host's: YouTube's pacing and breaker learn nothing
            self._other(ctx).finished(now, other)
            return False

        def step() -> bool:
            pacer.finished(now, ok, holder)
            return probe and breaker.succeeded()

        return await self._in_group(ctx, step)

    async def _decision(self, ctx: Context, item: Item, exc: Exception, now: float,
                        holder: str, other: str | None) -> Exception:
        pacer, breaker = self._pacer(ctx), self._breaker(ctx)
        full = logs.scrub(str(exc)).removeprefix("ERROR: ").strip() or type(exc).__name__
        warned = exc.warnings if isinstance(exc, ytdlp.DownloadFailed) else ()
        kind = cls.classify(full, exc, warned)
        text = cls.tidy(full)

        def step() -> tuple[float | None, str | None, dict[str, int]]:
            """(cooldown end, what the breaker did, attempts to give back) in the group."""
            pacer.finished(now, False, holder)
            if not cls.feeds_breaker(kind):
                breaker.neutral(own_fault=cls.is_permanent(kind))
            if kind in cls.COOLDOWN_KINDS:
                return pacer.enter_cooldown(now, kind, holder), None, {}
            if kind in (cls.DISK_FULL, cls.UPCOMING) or cls.is_permanent(kind):
                return None, None, {}
            opened = breaker.failed(item.id, kind, text, now)
            return None, opened, breaker.to_give_back() if opened == "opened" else {}

        until: float | None
        opened: str | None
        spent: dict[str, int]
        if other is not None:  # another host's failure: YouTube's pacing and breaker untouched
            self._other(ctx).finished(now, other)
            limited = kind in cls.COOLDOWN_KINDS  # that host's limit: this entry waits
            until, opened, spent = (now + ctx.settings.download.rate_limit_cooldown_s
                                    if limited else None), None, {}
        else:
            until, opened, spent = await self._in_group(ctx, step)
        if until is not None:
            return Cooldown(f"{kind}: {text}", kind=kind, until=until)
        if kind == cls.DISK_FULL:
            return Cooldown(f"disk full while downloading: {text}", kind=kind,
                            until=now + DISK_FULL_PAUSE_S)
        if kind == cls.UPCOMING:
            return Cooldown(text, kind=kind, until=now + cls.starts_in(full))
        if cls.is_permanent(kind):
            return Permanent(text, kind=kind)
        if opened is None:
            return Retryable(text, kind=kind)
        if opened == "opened":
            await self._opened(ctx, breaker, spent)
        elif opened == "reopened":
            ctx.log.warning("breaker_probe_failed", kind=kind, error=text,
                            probe_at=breaker.probe_at, level=breaker.level)
            await ctx.record_event("breaker_probe_failed", kind=kind, message=text)
            await self._publish_now(ctx)
        # back in the queue at once, no attempt spent: the gate holds every download until
        # the probe (or `ytpiped resume download`), so the video waits no longer than that
        return Cooldown(text, kind=kind, until=now)

    async def _opened(self, ctx: Context, breaker: Breaker, spent: dict[str, int]) -> None:
        """The breaker opened: give back the attempts its failures spent, say why."""
        given = await ctx.give_back_attempts(spent, breaker.kinds()) if spent else 0
        alert = self._breaker_alert(breaker)
        ctx.log.error("downloads_paused", kind=breaker.kind, error=breaker.error,
                      videos=len(breaker.failures), attempts_given_back=sum(spent.values()),
                      videos_given_back=given, probe_at=breaker.probe_at)
        await ctx.record_event("downloads_paused", kind=breaker.kind, message=alert)
        await self._publish_now(ctx)

    def _cookie_copy(self, source: str, private: Path, ctx: Context) -> cookies.CookieCopy:
        copy = cookies.private_copy(source, private)
        with contextlib.suppress(OSError):  # gone again since the copy: not our concern here
            if not self.warned_cookie_mode and cookies.too_open(source):
                ctx.log.warning("cookies_file_readable_by_others", path=source,
                                fix=f"chmod 600 {source}")
                self.warned_cookie_mode = True
        return copy


def _host_prefix(owner: str) -> str:
    """"host:pid" -> "host:" (what every holder of this host starts with)."""
    return owner.rsplit(":", 1)[0] + ":"


def other_host(item: Item) -> bool:
    """A URL on a host that is not YouTube (added directly, or listed by a followed feed or
    page): paced by its own host, apart from YouTube."""
    return is_other_host(item.kind)


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free
