"""The download stage's circuit breaker and deferrals, on a FakeClock with a stand-in for
yt-dlp that fails with yt-dlp's real messages; and the store's give-back of attempts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ytpiped import config
from ytpiped.download.ytdlp import DownloadFailed, Fetched
from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.stages.base import Item
from ytpiped.stages.download import DownloadStage
from ytpiped.store import Event, SqliteDB
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.context import FakeContext

FORMAT = ("ERROR: [youtube] {id}: Requested format is not available. Use --list-formats for a "
          "list of available formats")
N_FAILED = ("[youtube] {id}: n challenge solving failed: Some formats may be missing. Ensure "
            "you have a supported JavaScript runtime and challenge solver script distribution "
            "installed.")


class YtDlp:
    """Stands in for ytdlp.fetch: fails (as yt-dlp does while YouTube's challenges go
    unsolved) while `broken`, or with a given message per video, else downloads."""

    def __init__(self) -> None:
        self.broken = True
        self.messages: dict[str, str] = {}
        self.calls: list[str] = []

    def __call__(self, url: str, audio_dir: Path, stem: str, *args: Any) -> Fetched:
        self.calls.append(stem)
        if stem in self.messages:
            raise DownloadFailed(self.messages[stem])
        if self.broken:
            raise DownloadFailed(FORMAT.format(id=stem), (N_FAILED.format(id=stem),))
        audio_dir.mkdir(parents=True, exist_ok=True)
        path = audio_dir / f"{stem}.m4a"
        path.write_bytes(b"audio")
        return Fetched(path, "t", "c", None, 1.0, 5)


def item(vid: str) -> Item:
    return Item(id=vid, url=f"https://www.youtube.com/watch?v={vid}", kind="video",
                state="downloading", attempts=0)


def setup(tmp_path: Path, threshold: int = 5) -> tuple[FakeClock, FakeContext, YtDlp,
                                                       DownloadStage]:
    clock = FakeClock()
    settings = config.load(flags={"data_dir": str(tmp_path),
                                  "download.breaker_threshold": threshold,
                                  "download.breaker_cooldown_s": 3600,
                                  "download.delay_buffer_build_s": [0, 0]})
    ctx = FakeContext(settings, clock=clock, counts={"queued": 50})
    ytdlp = YtDlp()
    return clock, ctx, ytdlp, DownloadStage(fetcher=ytdlp)


async def fail_five(ctx: FakeContext, stage: DownloadStage) -> Cooldown:
    for n in range(4):
        with pytest.raises(Retryable) as err:
            await stage.run(item(f"video{n:06d}"), ctx)
        assert err.value.kind == "js_challenge"
    with pytest.raises(Cooldown) as held:
        await stage.run(item("video000004"), ctx)
    return held.value


async def test_five_failures_in_a_row_pause_downloads_and_give_attempts_back(
        tmp_path: Path) -> None:
    clock, ctx, _, stage = setup(tmp_path)
    await stage.gate(ctx)
    held = await fail_five(ctx, stage)
    assert held.kind == "js_challenge" and held.until == clock.now()  # the gate holds it
    assert stage.breaker is not None and stage.breaker.probe_at == clock.now() + 3600
    assert "Requested format is not available" in str(held)  # yt-dlp's own first line
    assert ctx.given_back == [({f"video{n:06d}": 1 for n in range(4)}, ["js_challenge"])]
    status = ctx.published[-1]
    assert status["phase"] == "paused" and status["breaker"]["state"] == "open"
    alert = next(a for a in status["alerts"] if "circuit breaker" in a)
    assert "js_challenge" in alert and "ytpiped doctor" in alert
    assert "ytpiped resume download" in alert and "JavaScript runtime" in alert
    assert [e for e, _, _ in ctx.events] == ["downloads_paused"]


async def test_the_gate_holds_until_the_probe_and_a_good_probe_resumes(tmp_path: Path) -> None:
    clock, ctx, ytdlp, stage = setup(tmp_path)
    await stage.gate(ctx)
    await fail_five(ctx, stage)
    probe_at = clock.now() + 3600
    gate = asyncio.ensure_future(stage.gate(ctx))
    await clock.drive(gate)
    assert clock.now() >= probe_at  # no download before the probe time
    ytdlp.broken = False  # YouTube or the setup was fixed meanwhile
    out = await stage.run(item("video000005"), ctx)
    assert (tmp_path / out.fields["audio_path"]).exists()
    assert stage.breaker is not None and stage.breaker.state == "closed"
    assert ctx.published[-1]["breaker"]["state"] == "closed"
    assert not any("circuit breaker" in a for a in ctx.published[-1].get("alerts", []))
    assert [e for e, _, _ in ctx.events] == ["downloads_paused", "downloads_resumed"]


async def test_a_failed_probe_pauses_again_for_twice_as_long(tmp_path: Path) -> None:
    clock, ctx, _, stage = setup(tmp_path)
    await stage.gate(ctx)
    await fail_five(ctx, stage)
    probe_at = clock.now() + 3600
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    assert clock.now() >= probe_at
    with pytest.raises(Cooldown):
        await stage.run(item("video000005"), ctx)  # the probe: still broken
    assert stage.breaker is not None and stage.breaker.probe_at == clock.now() + 7200
    assert len(ctx.given_back) == 1  # the probe spent nothing, nothing more to give back
    assert [e for e, _, _ in ctx.events] == ["downloads_paused", "breaker_probe_failed"]


async def test_private_videos_in_between_do_not_trip_it(tmp_path: Path) -> None:
    _, ctx, ytdlp, stage = setup(tmp_path)
    await stage.gate(ctx)
    for n in range(12):
        vid = f"video{n:06d}"
        if n % 3 == 2:
            ytdlp.messages[vid] = (f"ERROR: [youtube] {vid}: Private video. Sign in if you've "
                                   "been granted access to this video")
            with pytest.raises(Permanent) as err:
                await stage.run(item(vid), ctx)
            assert err.value.kind == "private"
        else:
            with pytest.raises(Retryable):
                await stage.run(item(vid), ctx)
    assert stage.breaker is not None and stage.breaker.state == "closed"
    assert ctx.given_back == []


async def test_a_playlist_listed_in_between_neither_resets_nor_closes_it(
        tmp_path: Path) -> None:
    _, ctx, _, _ = setup(tmp_path)

    def lister(url: str, *args: Any) -> tuple[str, list[str]]:
        return "a playlist", ["https://youtu.be/aaaaaaaaaaa"]

    stage = DownloadStage(fetcher=YtDlp(), lister=lister)
    playlist = Item(id="playlist:PLx", url="https://www.youtube.com/playlist?list=PLx",
                    kind="playlist", state="downloading", attempts=0)
    for n in range(4):
        with pytest.raises(Retryable):
            await stage.run(item(f"video{n:06d}"), ctx)
    await stage.run(playlist, ctx)  # listing needs no formats: it proves nothing
    with pytest.raises(Cooldown):
        await stage.run(item("video000004"), ctx)
    assert stage.breaker is not None and stage.breaker.state == "open"


async def test_the_pause_survives_a_restart_and_resume_download_ends_it(
        tmp_path: Path) -> None:
    clock, ctx, _, stage = setup(tmp_path)
    await stage.gate(ctx)
    await fail_five(ctx, stage)
    probe_at = clock.now() + 3600
    restarted = DownloadStage(fetcher=YtDlp())  # a new daemon, same published state
    await restarted.start(ctx)
    clock.advance(600)
    gate = asyncio.ensure_future(restarted.gate(ctx))
    await clock.drive(gate, until=lambda: clock.now() >= probe_at - 60)
    assert not gate.done()  # still paused after the restart
    assert ctx.published[-1]["phase"] == "paused"
    ctx.request = {"action": "resume", "at": 1.0}  # `ytpiped resume download`
    await clock.drive(gate)
    assert clock.now() < probe_at  # it resumed at once, before the probe time
    assert restarted.breaker is not None and restarted.breaker.state == "closed"
    assert ctx.events[-1][0] == "downloads_resumed"


async def test_pause_download_holds_until_resume(tmp_path: Path) -> None:
    clock, ctx, _, stage = setup(tmp_path)
    await stage.gate(ctx)
    ctx.request = {"action": "pause", "at": 1.0}
    gate = asyncio.ensure_future(stage.gate(ctx))
    await clock.drive(gate, until=lambda: clock.monotonic() > 3600)
    assert not gate.done() and ctx.published[-1]["phase"] == "paused"
    assert any("ytpiped pause download" in a for a in ctx.published[-1]["alerts"])
    ctx.request = {"action": "resume", "at": 2.0}
    await clock.drive(gate)
    assert gate.done()


async def test_a_premiere_waits_past_its_start_without_pausing_anything(tmp_path: Path) -> None:
    clock, ctx, ytdlp, stage = setup(tmp_path)
    ytdlp.messages["premiere01"] = "ERROR: [youtube] premiere01: Premieres in 2 hours"
    with pytest.raises(Cooldown) as err:
        await stage.run(item("premiere01"), ctx)
    assert err.value.kind == "upcoming" and err.value.until == clock.now() + 7200 + 300
    assert stage.pacer is not None and stage.pacer.cooldown_until == 0  # others go on
    assert stage.breaker is not None and stage.breaker.failures == {}


async def test_threshold_zero_turns_the_breaker_off(tmp_path: Path) -> None:
    _, ctx, _, stage = setup(tmp_path, threshold=0)
    for n in range(8):
        with pytest.raises(Retryable):
            await stage.run(item(f"video{n:06d}"), ctx)


def test_store_gives_back_attempts_only_to_rows_resting_after_such_failures(
        tmp_path: Path) -> None:
    store = SqliteDB(tmp_path / "t.db", now=0.0)
    ids = ["queued_js", "failed_js", "other_kind", "in_flight"]
    store.add_videos([(v, f"https://example.org/{v}", "generic") for v in ids], 0.0)
    store.claim("download", "me", 1.0, 60.0, limit=len(ids))
    store.release("queued_js", "me", "downloading", 2.0, next_attempt_at=50.0,
                  spend_attempt=True, kind="js_challenge", error="x")
    store.fail("failed_js", "me", "downloading", 2.0, kind="js_challenge", error="x")
    store.release("other_kind", "me", "downloading", 2.0, spend_attempt=True,
                  kind="private", error="x")

    def row(vid: str) -> tuple[str, int, float, str | None]:
        r = store.get(vid)
        assert r is not None
        return r.state, r.attempts, r.next_attempt_at, r.failed_stage

    assert row("failed_js") == ("failed", 1, 0.0, "download")
    n = store.give_back_attempts({v: 1 for v in ids}, ["js_challenge"], 3.0,
                                 Event("attempt_given_back", "download"))
    assert n == 2
    assert row("queued_js") == ("queued", 0, 50.0, None)  # keeps its place in the queue
    assert row("failed_js") == ("queued", 0, 0.0, None)  # failed by it: back in the queue
    assert row("other_kind") == ("queued", 1, 0.0, None)  # another kind: left alone
    assert row("in_flight")[:2] == ("downloading", 0)  # in progress: left alone
    assert [e[2] for e in store.events_of("failed_js")][-1] == "attempt_given_back"
    assert store.give_back_attempts({"queued_js": 1}, ["js_challenge"], 4.0) == 1
    assert row("queued_js")[1] == 0  # never below zero
    store.close()
