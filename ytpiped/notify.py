"""Notifications to a webhook (a JSON POST) and an ntfy topic (`[notify]` in the config).

Events (`notify.events`):

  alert          a new ALERT line in `ytpiped status` (bot check, cookies, LLM down, disk full …)
  breaker_open   the download circuit breaker opened
  queue_drained  the last queued video reached done or failed
  stopped        the daemon stops unexpectedly (a side task died, or it exits non-zero)

`emit` never waits: it puts the message on a bounded queue (when that is full the message
is dropped with a log line) and returns. One sender posts each message to every endpoint
at once, each bounded by `notify.timeout_s`; an endpoint that hangs or refuses costs a log
line, never the daemon's time. At most one message per event (and stage) is sent per
`notify.min_interval_s`; the ones held back are counted in the next. The endpoint URLs may
carry tokens: they are registered as secrets and never logged (log lines name the endpoint
"webhook" or "ntfy").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ytpiped import logs, metrics
from ytpiped.clock import Clock
from ytpiped.config import NotifyConfig
from ytpiped.states import TERMINAL

QUEUE_MAX = 64
#: at shutdown, what is still queued gets at most this long (and notify.timeout_s)
FLUSH_MAX_S = 5.0
TITLE_MAX = 200
TEXT_MAX = 4000
#: ntfy priorities (1-5 as names) and tags (emoji short codes) per event
PRIORITY = {"alert": "high", "breaker_open": "high", "stopped": "urgent",
            "queue_drained": "default"}
TAGS = {"alert": "warning", "breaker_open": "no_entry", "stopped": "rotating_light",
        "queue_drained": "white_check_mark"}
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Message:
    event: str
    title: str
    text: str
    at: float  # Unix time
    stage: str | None = None
    held_back: int = 0  # messages of this event (and stage) not sent since the last one


def alert_key(text: str) -> str:
    """An alert's identity across republishing: its text without the numbers (times,
    counts and levels change while the same alert stands)."""
    return _DIGITS.sub("#", text)


def _secret_parts(url: str) -> list[str]:
    """The URL and each part of it that may be a token (userinfo, path, query)."""
    parts = urlsplit(url)
    pieces = [url, parts.password or "", parts.username or "", parts.query, parts.path]
    pieces += [p for p in re.split(r"[/?&=]", f"{parts.path}?{parts.query}") if len(p) >= 12]
    return [p for p in pieces if p and p != "/"]


PendingCounts = Callable[[], Awaitable[Mapping[str, int]]]


class Notifications:
    def __init__(self, cfg: NotifyConfig, clock: Clock, *, host: str | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.host = host or socket.gethostname()
        self.endpoints = [(name, url) for name, url in (("webhook", cfg.webhook),
                                                        ("ntfy", cfg.ntfy)) if url]
        for _, url in self.endpoints:
            for part in _secret_parts(url):
                logs.register_secret(part)
        self.log = logs.get("ytpiped.notify")
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._last_sent: dict[str, float] = {}  # rate key -> monotonic time
        self._held: dict[str, int] = {}
        self._alerts: dict[str, set[str]] = {}  # stage -> alert keys it showed last
        self._breaker: str | None = None  # the breaker's state as last published
        self._outcome = asyncio.Event()  # a video finished or failed: is the queue empty?
        self._drained = False
        self._session: Any = None
        self._delivering: asyncio.Future[None] | None = None  # survives the sender's cancel

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)

    # ---------------------------------------------------------------- what happened

    def emit(self, event: str, title: str, text: str = "", *, stage: str | None = None) -> bool:
        """Queue a message unless the event is off, rate-limited or the queue is full;
        True when queued. Never waits."""
        if not self.endpoints or event not in self.cfg.events:
            return False
        key = f"{event}:{stage}" if stage else event
        now = self.clock.monotonic()
        last = self._last_sent.get(key)
        if last is not None and now - last < self.cfg.min_interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            metrics.notification(event, "rate_limited")
            self.log.info("notification_rate_limited", notify_event=event, stage=stage,
                          held_back=self._held[key])
            return False
        msg = Message(event, title[:TITLE_MAX], text[:TEXT_MAX], self.clock.now(), stage,
                      self._held.get(key, 0))
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            metrics.notification(event, "dropped")
            self.log.warning("notification_dropped", notify_event=event, stage=stage,
                             reason=f"{QUEUE_MAX} notifications wait already (the endpoints "
                                    "are slow or down)")
            return False
        self._last_sent[key] = now
        self._held.pop(key, None)
        return True

    def published(self, stage: str, status: Mapping[str, Any]) -> None:
        """A stage published its status: notify new ALERT lines, and the download breaker
        opening (its alert lines go with that message instead)."""
        alerts = [str(a) for a in status.get("alerts") or []]
        before = self._alerts.get(stage, set())
        new = [a for a in alerts if alert_key(a) not in before]
        self._alerts[stage] = {alert_key(a) for a in alerts}
        if stage == "download" and isinstance(status.get("breaker"), Mapping):
            breaker = status["breaker"]
            state = str(breaker.get("open_state") or breaker.get("state") or "closed")
            was, self._breaker = self._breaker, state
            if state == "open" and was == "closed":
                kind = breaker.get("kind") or "download_error"
                self.emit("breaker_open", f"ytpiped on {self.host}: downloads paused by the "
                          f"circuit breaker ({kind})", "\n".join(new), stage=stage)
                return
        for alert in new:
            self.emit("alert", f"ytpiped on {self.host}: ALERT ({stage})", alert, stage=stage)

    def outcome(self, event: str) -> None:
        """A stage run ended (the worker's on_outcome): look whether the queue drained."""
        if event in ("completed", "failed"):
            self._outcome.set()

    def stopped(self, reason: str) -> None:
        self.emit("stopped", f"ytpiped on {self.host} stopped unexpectedly", logs.scrub(reason))

    # ---------------------------------------------------------------- the side task

    async def run(self, pending_counts: PendingCounts) -> None:
        """Send queued messages and watch for the queue draining, until cancelled. Never
        raises: a failure is logged and the next message goes on."""
        if not self.endpoints:
            await asyncio.Event().wait()  # nothing to do; cancelled at shutdown
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send_loop(), name="notify-send")
            group.create_task(self._drain_loop(pending_counts), name="notify-drain")

    async def _send_loop(self) -> None:
        while True:
            msg = await self.queue.get()
            # shielded: cancelling the sender at the stop leaves this delivery to close()
            self._delivering = asyncio.ensure_future(self._deliver(msg))
            await asyncio.shield(self._delivering)

    async def _drain_loop(self, pending_counts: PendingCounts) -> None:
        while True:
            await self._outcome.wait()
            self._outcome.clear()
            try:
                counts = dict(await pending_counts())
            except Exception as exc:  # the store is busy or closing: the next outcome asks
                self.log.warning("notify_drain_check_failed", error=logs.scrub(str(exc)))
                continue
            self.check_drained(counts)

    def check_drained(self, counts: Mapping[str, int]) -> None:
        pending = sum(n for state, n in counts.items() if state not in TERMINAL)
        if pending:
            self._drained = False
            return
        if self._drained:
            return
        self._drained = True
        done, failed = counts.get("done", 0), counts.get("failed", 0)
        self.emit("queue_drained", f"ytpiped on {self.host}: queue drained",
                  f"every video is done or failed: {done} done, {failed} failed")

    async def close(self) -> None:
        """Send what is still queued (at most FLUSH_MAX_S / notify.timeout_s), then close
        the HTTP session. For the stop: best effort, bounded."""
        try:
            async with asyncio.timeout(min(FLUSH_MAX_S, self.cfg.timeout_s)):
                if self._delivering is not None:
                    await self._delivering
                while not self.queue.empty():
                    await self._deliver(self.queue.get_nowait())
        except TimeoutError:
            self.log.warning("notifications_not_sent", count=self.queue.qsize() + 1,
                             reason="the endpoints did not answer before the stop")
        finally:
            if self._delivering is not None and not self._delivering.done():
                self._delivering.cancel()
                await asyncio.gather(self._delivering, return_exceptions=True)
            session, self._session = self._session, None
            if session is not None:
                await session.close()

    # ---------------------------------------------------------------- delivery

    async def _deliver(self, msg: Message) -> None:
        await asyncio.gather(*(self._send_one(name, url, msg) for name, url in self.endpoints))

    async def _send_one(self, name: str, url: str, msg: Message) -> None:
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                status = await self._post(name, url, msg)
        except Exception as exc:  # a notification never stops the daemon
            error = "no answer within notify.timeout_s" if isinstance(exc, TimeoutError) \
                else f"{type(exc).__name__}: {logs.scrub(str(exc))}"
            self._failed(name, msg, error)
            return
        if 200 <= status < 300:
            metrics.notification(msg.event, "sent")
            self.log.info("notification_sent", endpoint=name, notify_event=msg.event)
        else:
            self._failed(name, msg, f"HTTP {status}")

    def _failed(self, name: str, msg: Message, error: str) -> None:
        metrics.notification(msg.event, "failed")
        self.log.warning("notification_failed", endpoint=name, notify_event=msg.event,
                         error=error)

    async def _post(self, name: str, url: str, msg: Message) -> int:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        text = msg.text or msg.title
        if msg.held_back:
            text += (f"\n({msg.held_back} more {msg.event} notification"
                     f"{'s' if msg.held_back != 1 else ''} held back since the last one)")
        if name == "ntfy":
            headers = {"Title": _header(msg.title), "Priority": PRIORITY.get(msg.event,
                                                                               "default"),
                       "Tags": TAGS.get(msg.event, "")}
            async with self._session.post(url, data=text.encode(), headers=headers) as resp:
                return int(resp.status)
        async with self._session.post(url, json=payload(msg, text, self.host)) as resp:
            return int(resp.status)


def payload(msg: Message, text: str, host: str) -> dict[str, Any]:
    """The webhook's JSON body ("text" also makes it a Slack/Mattermost message)."""
    when = dt.datetime.fromtimestamp(msg.at, dt.UTC).isoformat(timespec="seconds")
    return {"source": "ytpiped", "event": msg.event, "title": msg.title, "message": text,
            "text": f"{msg.title}\n{text}" if text != msg.title else msg.title,
            "stage": msg.stage, "host": host, "time": when, "held_back": msg.held_back}


def _header(value: str) -> str:
    """A header value on one line, in latin-1 (what HTTP headers carry)."""
    one_line = " ".join(value.split())
    return one_line.encode("latin-1", "replace").decode("latin-1")
