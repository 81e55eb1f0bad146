"""Real yt-dlp against the local media server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ytpiped import config, logs
from ytpiped.download import ytdlp
from ytpiped.download.ytdlp import Fetched
from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.stages.base import Item
from ytpiped.stages.download import DownloadStage
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.context import FakeContext
from ytpiped.testing.media_server import MediaServer
from ytpiped.urls import Target, canonicalise

SECRET = "AKSECRETcookieVALUE123"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[MediaServer]:
    async with MediaServer() as s:
        yield s


def item(url: str, vid: str = "dlvideo0001", kind: str = "video") -> Item:
    """A row for `url`: by default a YouTube video (served by the local media server), so
    YouTube's pacing, cooldowns and breaker apply; kind "generic" is another host's URL."""
    return Item(id=vid, url=url, kind=kind, state="downloading", attempts=0)


def requests(server: MediaServer) -> list[str]:
    return [server.url + path for _, path, _ in server.log]


def ctx_for(tmp_path: Path, **flags: Any) -> FakeContext:
    return FakeContext(config.load(flags={"data_dir": str(tmp_path), **flags}))


async def test_downloads_audio_with_metadata(server: MediaServer, tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    out = await DownloadStage().run(item(server.media_url("coffee.m4a")), ctx)
    path = tmp_path / out.fields["audio_path"]
    assert path == tmp_path / "audio" / "dlvideo0001.m4a" and path.exists()
    assert out.fields["size_bytes"] == path.stat().st_size == 48169
    assert out.fields["duration_s"] == pytest.approx(11.5, abs=0.1)  # probed with PyAV
    assert out.fields["title"] == "coffee"
    assert not list((tmp_path / "audio").glob("*.part"))


@pytest.mark.parametrize("behaviour,exc,kind", [
    ({"status": 404}, Permanent, "unavailable"),
    ({"status": 429, "retry_after": 30}, Cooldown, "rate_limited"),
    ({"status": 403}, Retryable, "forbidden"),
    ({"status": 500}, Retryable, "network"),
    ({"truncate": 1}, Retryable, "truncated"),
])
async def test_error_classes(server: MediaServer, tmp_path: Path, behaviour: dict[str, Any],
                             exc: type, kind: str) -> None:
    stage = DownloadStage()
    with pytest.raises(exc) as err:
        await stage.run(item(server.media_url("ocean.mp3", **behaviour)), ctx_for(tmp_path))
    assert err.value.kind == kind
    assert not list((tmp_path / "audio").glob("*.part"))  # nothing half-written is kept


async def test_rate_limit_cools_everything_down_and_doubles(server: MediaServer,
                                                            tmp_path: Path) -> None:
    clock = FakeClock()
    ctx = FakeContext(config.load(flags={"data_dir": str(tmp_path),
                                         "download.rate_limit_cooldown_s": 100}), clock=clock)
    stage = DownloadStage()
    url = server.media_url("solar.webm", status=429, times=2)
    with pytest.raises(Cooldown) as first:
        await stage.run(item(url), ctx)
    assert first.value.until == clock.now() + 100
    with pytest.raises(Cooldown) as second:
        await stage.run(item(url), ctx)
    assert second.value.until == clock.now() + 200  # doubled
    ok = await stage.run(item(url), ctx)  # third request: the server lets it through
    assert (tmp_path / ok.fields["audio_path"]).exists()
    assert stage.pacer is not None and stage.pacer.cooldown_level == 0


async def test_gate_waits_out_the_phase_on_a_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    ctx = FakeContext(config.load(flags={"data_dir": str(tmp_path)}), clock=clock,
                      counts={"queued": 10})
    stage = DownloadStage()
    await stage.gate(ctx)  # first download: no previous end, no wait
    assert ctx.published[-1]["phase"] == "buffer_build"
    pacer = stage.pacer
    assert pacer is not None
    # changes to pacing go through the pacing group's state in the store, as the stage's own
    await stage._in_group(ctx, lambda: pacer.finished(clock.now(), ok=True))
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    waited = clock.monotonic()
    assert 30 <= waited <= 60.1  # delay_buffer_build_s
    assert ctx.published[-1]["next_download_at"] <= clock.now()
    await stage._in_group(ctx, lambda: (pacer.enter_cooldown(clock.now(), "bot_check"),
                                        pacer.finished(clock.now(), ok=False)))
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    assert clock.monotonic() - waited >= 3600  # the cooldown held the gate
    assert any("not a bot" in a for p in ctx.published for a in p.get("alerts", []))


async def test_full_disk_pauses_the_stage(tmp_path: Path) -> None:
    def fetcher(*args: Any) -> Fetched:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(Cooldown) as err:
        await DownloadStage(fetcher=fetcher).run(item("https://example.org/x"),
                                                 ctx_for(tmp_path))
    assert err.value.kind == "disk_full"


async def test_playlist_expansion_with_a_flat_extractor_double(tmp_path: Path) -> None:
    urls = ["https://www.youtube.com/watch?v=aaaaaaaaaaa", "https://youtu.be/bbbbbbbbbbb",
            "https://www.youtube.com/watch?v=aaaaaaaaaaa"]
    calls: list[str] = []

    def lister(url: str, *args: Any) -> tuple[str, list[str]]:
        calls.append(url)
        return "My playlist", urls

    ctx = ctx_for(tmp_path)
    out = await DownloadStage(lister=lister).run(
        item("https://www.youtube.com/playlist?list=PLxyz0123456", "playlist:PLxyz0123456",
             "playlist"), ctx)
    assert out.finished_state == "done" and out.info["expanded"] == 3
    assert out.info["added"] == 2 and out.fields["title"] == "My playlist"
    assert [p for _, p in ctx.added] == ["playlist:PLxyz0123456"] * 2


async def test_cookies_copied_privately_and_never_logged(tmp_path: Path) -> None:
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n"
                   f".youtube.com\tTRUE\t/\tTRUE\t0\tSAPISID\t{SECRET}\n")
    os.chmod(jar, 0o644)  # group/world readable: warned about
    seen: dict[str, Any] = {}

    def fetcher(url: str, audio_dir: Path, stem: str, log: Any,
                options: ytdlp.Options) -> Fetched:
        cookiefile = options.cookiefile
        assert cookiefile is not None and cookiefile != jar
        seen["mode"] = stat.S_IMODE(cookiefile.stat().st_mode)
        seen["path"] = cookiefile
        assert SECRET in cookiefile.read_text()
        raise RuntimeError(f"HTTP Error 403: Forbidden; sent cookie SAPISID={SECRET}")

    out = io.StringIO()
    logs.setup(json=True, stream=out)
    try:
        ctx = ctx_for(tmp_path, **{"download.cookies_file": str(jar)})
        with pytest.raises(Retryable) as err:
            await DownloadStage(fetcher=fetcher).run(item("https://example.org/x"), ctx)
        logs.get().error("download_failed", error=str(err.value))
        logging.getLogger("yt_dlp").warning("cookie %s", SECRET)
    finally:
        logging.getLogger().handlers.clear()
        logs._secret_values.clear()
    assert seen["mode"] == 0o600 and not seen["path"].exists()  # private, then deleted
    assert SECRET not in str(err.value) and "[redacted]" in str(err.value)
    text = out.getvalue()
    assert SECRET not in text and "cookies_file_readable_by_others" in text
    assert json.loads(text.splitlines()[-1])["event"] == "cookie [redacted]"


async def test_yt_dlp_never_runs_on_the_event_loop_during_4_downloads(
        server: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """yt-dlp is synchronous: every call of it must run off the event loop's thread (a
    structural check that does not vary with machine load; the worst loop stall is
    printed for information, not asserted)."""
    import threading

    import yt_dlp

    loop_thread = threading.current_thread()
    calls: list[threading.Thread] = []
    real = yt_dlp.YoutubeDL.extract_info

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(threading.current_thread())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info", recording)
    ctx = ctx_for(tmp_path)
    stage = DownloadStage(concurrency=4)
    worst = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - t0 - 0.01)

    tick = asyncio.create_task(ticker())
    names = ["solar.webm", "coffee.m4a", "ocean.mp3", "long.opus"]
    results = await asyncio.gather(*(
        stage.run(item(server.media_url(n, slow=400_000), f"lagvideo{i:03d}"), ctx)
        for i, n in enumerate(names)))
    stop.set()
    await tick
    assert all((tmp_path / r.fields["audio_path"]).exists() for r in results)
    assert len(calls) >= len(names)
    assert loop_thread not in calls
    with capsys.disabled():
        print(f"\nworst event-loop stall during 4 downloads: {worst * 1000:.0f} ms")


async def test_cooldown_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = config.load(flags={"data_dir": str(tmp_path)})
    ctx = FakeContext(settings, clock=clock, counts={"queued": 5})
    first = DownloadStage()
    await first.gate(ctx)
    pacer = first.pacer
    assert pacer is not None
    await first._in_group(ctx, lambda: (pacer.enter_cooldown(clock.now(), "rate_limited"),
                                        pacer.finished(clock.now(), ok=False)))
    await ctx.publish(first._status("cooldown", pacer.cooldown_until, clock.now(),
                                    await first._buffer(ctx)))
    restarted = DownloadStage()  # a new daemon: fresh stage, same published state
    await restarted.start(ctx)  # restores what the last daemon published
    clock.advance(600)
    gate = asyncio.ensure_future(restarted.gate(ctx))
    await clock.drive(gate)
    assert clock.monotonic() >= 3600  # it waited out the rest of the hour
    assert restarted.pacer is not None and restarted.pacer.cooldown_level == 1


async def test_page_with_two_audio_players_is_expanded_like_a_playlist(
        server: MediaServer, tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    page = server.page_url("two.html", "coffee.m4a", "ocean.mp3")
    out = await DownloadStage().run(item(page), ctx)
    assert out.finished_state == "done" and out.info["added"] == 2
    assert ctx.added == [(server.media_url("coffee.m4a"), "dlvideo0001"),
                         (server.media_url("ocean.mp3"), "dlvideo0001")]
    assert not list((tmp_path / "audio").glob("*"))  # nothing downloaded, nothing left
    assert requests(server) == [page]  # one request: the page


async def test_podcast_feed_becomes_one_row_per_episode_and_each_downloads(
        server: MediaServer, tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    feed = server.feed_url("show.xml", "ocean.mp3", "coffee.m4a", "solar.webm")
    stage = DownloadStage()
    out = await stage.run(item(feed, "url-feed"), ctx)
    assert out.finished_state == "done" and out.fields["title"] == "Test podcast show.xml"
    episodes = [server.media_url(n) for n in ("ocean.mp3", "coffee.m4a", "solar.webm")]
    assert ctx.added == [(u, "url-feed") for u in episodes]  # enclosure URLs, as queued
    assert requests(server) == [feed]  # the feed alone: no episode fetched while listing
    for url in episodes:  # each episode row downloads on its own
        target = canonicalise(url)
        assert isinstance(target, Target) and target.kind == "generic"
        got = await stage.run(item(url, target.id), ctx)
        assert (tmp_path / got.fields["audio_path"]).stat().st_size == got.fields["size_bytes"] > 0


async def test_feed_with_one_episode_queues_it(server: MediaServer, tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    out = await DownloadStage().run(item(server.feed_url("one.xml", "ocean.mp3")), ctx)
    assert out.finished_state == "done"
    assert ctx.added == [(server.media_url("ocean.mp3"), "dlvideo0001")]


async def test_page_with_one_audio_player_stays_one_video(server: MediaServer,
                                                         tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    out = await DownloadStage().run(item(server.page_url("one.html", "coffee.m4a")), ctx)
    assert out.finished_state is None and ctx.added == []
    assert out.fields["audio_path"] == "audio/dlvideo0001.m4a"  # relative to the data dir


async def test_empty_feed_is_unavailable(server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(Permanent) as err:
        await DownloadStage().run(item(server.feed_url("empty.xml")), ctx_for(tmp_path))
    assert err.value.kind == "unavailable" and "no media found" in str(err.value)


async def test_failed_download_leaves_no_file_behind(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    other = audio / "othervideo1.m4a"
    other.write_bytes(b"another video's audio")

    def fetcher(url: str, audio_dir: Path, stem: str, *args: Any) -> Fetched:
        (audio_dir / f"{stem}.m4a").write_bytes(b"a whole first entry")
        (audio_dir / f"{stem}.mp3.part").write_bytes(b"half of a second one")
        raise KeyError("ext")

    with pytest.raises(Retryable):
        await DownloadStage(fetcher=fetcher).run(item("https://example.org/x"),
                                                 ctx_for(tmp_path))
    assert sorted(audio.iterdir()) == [other]
