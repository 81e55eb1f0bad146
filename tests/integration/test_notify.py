"""Notifications (ytpiped.notify) against a local HTTP server that records what it gets,
answers 500, or never answers; and a port nobody listens on."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ytpiped import config, logs, metrics
from ytpiped.clock import SystemClock
from ytpiped.daemon import Daemon
from ytpiped.errors import ConfigError
from ytpiped.notify import QUEUE_MAX, Notifications, alert_key
from ytpiped.stages.base import Context
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.stages import FakeStage
from ytpiped.testing.stages import fake_pipeline as _fake_pipeline

WEBHOOK_TOKEN = "hooktoken-5f1d9c27a0"
NTFY_TOPIC = "ytpiped-topic-8c41e2b7"


@dataclass
class Got:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    base: str
    got: asyncio.Queue[Got] = field(default_factory=asyncio.Queue)
    hung: asyncio.Queue[None] = field(default_factory=asyncio.Queue)  # one per held request

    async def next(self) -> Got:
        async with asyncio.timeout(20):
            return await self.got.get()


@contextlib.asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    never = asyncio.Event()
    rec = Recorder("")

    async def record(request: web.Request) -> web.Response:
        await rec.got.put(Got(request.path_qs, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="broken")

    async def hang(request: web.Request) -> web.Response:
        rec.hung.put_nowait(None)
        await never.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/hook", record)
    app.router.add_post("/ntfy/{topic}", record)
    app.router.add_post("/fail/{topic}", fail)
    app.router.add_post("/hang", hang)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.base = f"http://127.0.0.1:{port}"
    try:
        yield rec
    finally:
        await runner.cleanup()


def notify_cfg(**keys: Any) -> config.NotifyConfig:
    return config.load(flags={f"notify.{k}": v for k, v in keys.items()}).notify


@pytest.fixture
def log_text() -> Any:
    out = io.StringIO()
    logs.setup(json=True, level="debug", stream=out)
    yield out
    logs._secret_values.clear()


async def test_webhook_gets_json_and_ntfy_gets_title_priority_tags() -> None:
    async with recorder() as rec:
        notes = Notifications(notify_cfg(webhook=f"{rec.base}/hook?token={WEBHOOK_TOKEN}",
                                         ntfy=f"{rec.base}/ntfy/{NTFY_TOPIC}"),
                              FakeClock(), host="box")
        task = asyncio.create_task(notes.run(_never_called))
        assert notes.emit("breaker_open", "ytpiped on box: downloads paused", "5 in a row",
                          stage="download")
        got = sorted([await rec.next(), await rec.next()], key=lambda g: g.path)
        task.cancel()
        await notes.close()
    hook, ntfy = got
    assert hook.path == f"/hook?token={WEBHOOK_TOKEN}"
    assert hook.headers["Content-Type"] == "application/json"
    body = hook.json()
    assert body["source"] == "ytpiped" and body["event"] == "breaker_open"
    assert body["title"] == "ytpiped on box: downloads paused"
    assert body["message"] == "5 in a row" and body["stage"] == "download"
    assert body["host"] == "box" and body["time"].startswith("2023-11-14T22:13:20")
    assert body["text"] == "ytpiped on box: downloads paused\n5 in a row"
    assert ntfy.path == f"/ntfy/{NTFY_TOPIC}"
    assert ntfy.headers["Title"] == "ytpiped on box: downloads paused"
    assert ntfy.headers["Priority"] == "high" and ntfy.headers["Tags"] == "no_entry"
    assert ntfy.body == b"5 in a row"


async def _never_called() -> dict[str, int]:
    raise AssertionError("no outcome was reported")


def test_rate_limited_per_event_and_stage_and_counted_in_the_next() -> None:
    clock = FakeClock()
    notes = Notifications(notify_cfg(webhook="http://127.0.0.1:9/x", min_interval_s=600),
                          clock, host="box")
    limited = metrics.REGISTRY.get_sample_value(
        "ytpiped_notifications_total", {"event": "alert", "result": "rate_limited"}) or 0
    assert notes.emit("alert", "t", "bot check", stage="download")
    assert not notes.emit("alert", "t", "bot check again", stage="download")
    assert not notes.emit("alert", "t", "and again", stage="download")
    assert notes.emit("alert", "t", "Ollama down", stage="mine")  # another stage: its own
    assert notes.emit("queue_drained", "t")  # another event: its own
    clock.advance(599)
    assert not notes.emit("alert", "t", "still", stage="download")
    clock.advance(1)
    assert notes.emit("alert", "t", "later", stage="download")
    sent = [notes.queue.get_nowait() for _ in range(notes.queue.qsize())]
    assert [(m.event, m.stage, m.held_back) for m in sent] == [
        ("alert", "download", 0), ("alert", "mine", 0), ("queue_drained", None, 0),
        ("alert", "download", 3)]
    assert metrics.REGISTRY.get_sample_value(
        "ytpiped_notifications_total", {"event": "alert", "result": "rate_limited"}) == \
        limited + 3


def test_events_can_be_turned_off_and_nothing_is_sent_without_endpoints() -> None:
    notes = Notifications(notify_cfg(webhook="http://127.0.0.1:9/x", events=["stopped"]),
                          FakeClock())
    assert not notes.emit("alert", "t", "x", stage="download")
    assert notes.emit("stopped", "t", "x")
    off = Notifications(notify_cfg(), FakeClock())
    assert not off.enabled and not off.emit("stopped", "t", "x")


def test_new_alerts_and_the_breaker_opening() -> None:
    notes = Notifications(notify_cfg(webhook="http://127.0.0.1:9/x", min_interval_s=0),
                          FakeClock(), host="box")

    def sent() -> list[tuple[str, str]]:
        return [(m.event, m.text) for m in
                (notes.queue.get_nowait() for _ in range(notes.queue.qsize()))]

    closed = {"state": "closed", "open_state": "closed"}
    notes.published("download", {"phase": "steady", "breaker": closed})
    assert sent() == []
    notes.published("download", {"alerts": ["bot check at 12:00:01 (level 1)"],
                                 "breaker": closed})
    assert sent() == [("alert", "bot check at 12:00:01 (level 1)")]
    # the same alert, republished with other numbers, is not news
    notes.published("download", {"alerts": ["bot check at 12:30:17 (level 2)"],
                                 "breaker": closed})
    assert sent() == []
    opened = {"state": "open", "open_state": "open", "kind": "js_challenge"}
    breaker_alert = "downloads paused by the circuit breaker: 5 downloads in a row"
    notes.published("download", {"alerts": ["bot check at 12:31:00 (level 2)", breaker_alert],
                                 "breaker": opened})
    assert sent() == [("breaker_open", breaker_alert)]  # its alert goes with it, once
    notes.published("download", {"alerts": [breaker_alert.replace("5", "6")],
                                 "breaker": {**opened, "state": "probing",
                                             "open_state": "probing"}})
    notes.published("download", {"alerts": [breaker_alert], "breaker": opened})
    assert sent() == []  # probing and open again: the same opening
    notes.published("download", {"breaker": closed})
    notes.published("download", {"alerts": [breaker_alert], "breaker": opened})
    assert [e for e, _ in sent()] == ["breaker_open"]
    notes.published("mine", {"alerts": ["Ollama is unreachable"]})
    notes.published("store", {"alerts": ["the disk under /data is full"]})
    assert [e for e, _ in sent()] == ["alert", "alert"]
    # a daemon that starts with the breaker open (restored) says so as an alert
    fresh = Notifications(notify_cfg(webhook="http://127.0.0.1:9/x"), FakeClock())
    fresh.published("download", {"alerts": [breaker_alert], "breaker": opened})
    assert [m.event for m in [fresh.queue.get_nowait()]] == ["alert"]
    assert alert_key("until 12:00:01, pause 2") == alert_key("until 13:10:59, pause 3")


def test_queue_drained_once_per_drain() -> None:
    notes = Notifications(notify_cfg(webhook="http://127.0.0.1:9/x", min_interval_s=0),
                          FakeClock(), host="box")
    notes.check_drained({"queued": 2, "transcribing": 1, "done": 4, "failed": 0})
    assert notes.queue.empty()
    notes.check_drained({"queued": 0, "done": 6, "failed": 1})
    msg = notes.queue.get_nowait()
    assert msg.event == "queue_drained" and "6 done, 1 failed" in msg.text
    notes.check_drained({"queued": 0, "done": 6, "failed": 1})  # the same drain
    assert notes.queue.empty()
    notes.check_drained({"queued": 1, "done": 6, "failed": 1})  # new work came
    notes.check_drained({"queued": 0, "done": 7, "failed": 1})
    assert notes.queue.get_nowait().event == "queue_drained"


async def test_failing_and_refusing_endpoints_are_logged_without_their_urls(
        unused_tcp_port: int, log_text: io.StringIO) -> None:
    async with recorder() as rec:
        notes = Notifications(notify_cfg(
            webhook=f"http://127.0.0.1:{unused_tcp_port}/hook?token={WEBHOOK_TOKEN}",
            ntfy=f"{rec.base}/fail/{NTFY_TOPIC}"), FakeClock(), host="box")
        failed = metrics.REGISTRY.get_sample_value(
            "ytpiped_notifications_total", {"event": "stopped", "result": "failed"}) or 0
        notes.stopped(f"crashed while posting to {rec.base}/fail/{NTFY_TOPIC}")
        await notes.close()  # sends what is queued
    lines = [json.loads(line) for line in log_text.getvalue().splitlines()]
    failures = {line["endpoint"]: line["error"] for line in lines
                if line["event"] == "notification_failed"}
    assert failures["ntfy"] == "HTTP 500"
    assert failures["webhook"].startswith("ClientConnectorError")
    assert WEBHOOK_TOKEN not in log_text.getvalue() and NTFY_TOPIC not in log_text.getvalue()
    assert metrics.REGISTRY.get_sample_value(
        "ytpiped_notifications_total", {"event": "stopped", "result": "failed"}) == failed + 2


async def test_a_hanging_endpoint_never_stalls_the_sender_or_the_caller(
        log_text: io.StringIO) -> None:
    async with recorder() as rec:
        notes = Notifications(notify_cfg(webhook=f"{rec.base}/hang", timeout_s=0.1,
                                         min_interval_s=0), FakeClock())
        # emit never waits: past the queue's bound messages are dropped, with a log line
        queued = [notes.emit("alert", "t", f"alert {i}", stage=f"s{i}")
                  for i in range(QUEUE_MAX + 3)]
        assert queued.count(True) == QUEUE_MAX and queued[-3:] == [False] * 3
        task = asyncio.create_task(notes.run(_never_called))
        async with asyncio.timeout(30):  # a hanging POST is given up after timeout_s
            for _ in range(2):  # ... and the next message goes out
                await rec.hung.get()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await notes.close()
    events = [json.loads(line)["event"] for line in log_text.getvalue().splitlines()]
    assert events.count("notification_dropped") == 3
    assert "notification_failed" in events
    assert "notifications_not_sent" in events  # the stop does not wait for the rest


def test_notify_urls_are_checked_without_repeating_them() -> None:
    for key, bad in (("webhook", "ftp://example.org/hook?token=s3cr3t-t0ken"),
                     ("ntfy", "s3cr3t-t0ken"), ("webhook", "http:///s3cr3t-t0ken"),
                     ("ntfy", "https://ntfy.sh:99999/s3cr3t-t0ken")):
        with pytest.raises(ConfigError, match=rf"'notify\.{key}': expected an http") as err:
            config.load(flags={f"notify.{key}": bad})
        assert "s3cr3t" not in str(err.value)
    with pytest.raises(ConfigError, match=r"notify\.events"):
        config.load(flags={"notify.events": ["alert", "everything"]})


# ---------------------------------------------------------------- in the daemon


def seed(data: Path, ids: list[str]) -> None:
    s = SqliteDB(db_path(data), now=0)
    s.add_videos([NewVideo(i, f"https://example.org/{i}", "video") for i in ids], now=0)
    s.close()


def daemon_settings(data: Path, **flags: Any) -> config.Settings:
    return config.load(flags={"data_dir": str(data), "daemon.poll_interval_s": 0.05,
                              "daemon.shutdown_grace_s": 1.0, **flags})


async def test_daemon_notifies_when_the_queue_drains(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, ["drainvid001", "drainvid002", "drainvid003"])
    async with recorder() as rec:
        settings = daemon_settings(data, **{"notify.webhook": f"{rec.base}/hook"})
        stages = [FakeStage(s.name, fail={"analyze:drainvid002": "permanent"})
                  for s in _fake_pipeline(settings, SystemClock())]
        d = Daemon(settings, stages=stages, environ={})
        task = asyncio.create_task(d.serve())
        got = (await rec.next()).json()
        assert got["event"] == "queue_drained"
        assert "2 done, 1 failed" in got["message"]
        d.stop.set()
        assert await task == 0
    assert rec.got.empty()  # once


class DyingGate(FakeStage):
    async def gate(self, ctx: Context) -> None:
        raise RuntimeError("the gate broke")


async def test_daemon_notifies_an_unexpected_stop_before_it_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with recorder() as rec:
        settings = daemon_settings(data, **{"notify.ntfy": f"{rec.base}/ntfy/{NTFY_TOPIC}"})
        d = Daemon(settings, stages=[DyingGate("download")], environ={})
        assert await asyncio.wait_for(d.serve(), 20) == 1
        got = rec.got.get_nowait()  # sent before serve() returned
    assert got.headers["Priority"] == "urgent"
    assert "stopped unexpectedly" in got.headers["Title"]
    assert b"worker:download died" in got.body and b"the gate broke" in got.body


async def test_daemon_notifies_a_start_up_failure(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with recorder() as rec:
        settings = daemon_settings(data, **{"notify.webhook": f"{rec.base}/hook",
                                            "daemon.stage_factory": "no.such.module:f"})
        with pytest.raises(ConfigError):
            await asyncio.wait_for(Daemon(settings, environ={}).serve(), 20)
        got = rec.got.get_nowait().json()
    assert got["event"] == "stopped" and "daemon.stage_factory" in got["message"]


async def test_a_hanging_endpoint_does_not_hold_up_the_daemon(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = [f"hangvid{i:03d}" for i in range(4)]
    seed(data, ids)
    async with recorder() as rec:
        settings = daemon_settings(data, **{"notify.webhook": f"{rec.base}/hang",
                                            "notify.timeout_s": 1})
        stages = _fake_pipeline(settings, SystemClock())
        d = Daemon(settings, stages=stages, environ={})
        task = asyncio.create_task(d.serve())
        async with asyncio.timeout(20):
            await rec.hung.get()  # the queue_drained POST hangs
        s = SqliteDB(db_path(data), readonly=True)
        try:
            assert s.counts()["done"] == len(ids)
        finally:
            s.close()
        d.stop.set()
        assert await asyncio.wait_for(task, 20) == 0  # the flush gives up after timeout_s
