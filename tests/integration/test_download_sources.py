"""The download stage against the fake YouTube, through the real yt-dlp: metadata kept,
filters that skip, subtitles instead of Whisper, SponsorBlock segments."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ytpiped import config
from ytpiped.download.follows import Follow
from ytpiped.errors import Cooldown
from ytpiped.stages.base import Item
from ytpiped.stages.download import DownloadStage
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.context import FakeContext
from ytpiped.testing.media_server import MediaServer

CHAPTERS = [(0.0, 4.0, "Panels"), (4.0, 9.5, "Prices")]
CUES = {"en": [(0.0, 3.0, "Solar panels turn light into power."),
               (3.0, 6.0, "Buy our sponsor's VPN today."),
               (6.0, 9.0, "Prices fell by ninety percent.")]}


def item(vid: str) -> Item:
    return Item(id=vid, url=f"https://www.youtube.com/watch?v={vid}", kind="video",
                state="downloading", attempts=0)


def ctx_for(tmp_path: Path, **flags: Any) -> FakeContext:
    return FakeContext(config.load(flags={"data_dir": str(tmp_path), **flags}))


def add_solar(server: MediaServer, vid: str = "fakesolar01", **extra: Any) -> None:
    server.youtube.video(vid, "solar.webm", title="Solar power explained", duration=9.5,
                         description="All about the sun.", tags=["solar", "energy"],
                         chapters=CHAPTERS, subtitles=CUES, **extra)


def media_requests(server: MediaServer) -> list[str]:
    return [path for _, path, _ in server.log if path.startswith("/media/")]


async def test_metadata_is_kept_in_the_row_and_in_meta_json(fake_youtube: MediaServer,
                                                            tmp_path: Path) -> None:
    add_solar(fake_youtube)
    out = await DownloadStage().run(item("fakesolar01"), ctx_for(tmp_path))
    assert out.finished_state is None and (tmp_path / out.fields["audio_path"]).exists()
    assert out.fields["title"] == "Solar power explained"
    meta = out.info["meta"]
    assert meta == json.loads((tmp_path / "meta" / "fakesolar01.json").read_text())
    assert (meta["channel"], meta["channel_id"], meta["upload_date"]) == (
        "Fake Channel", "UCfakefakefakefakefake01", "20260101")
    assert (meta["description"], meta["tags"], meta["language"]) == (
        "All about the sun.", ["solar", "energy"], "en")
    assert meta["chapters"] == [{"start": 0.0, "end": 4.0, "title": "Panels"},
                                {"start": 4.0, "end": 9.5, "title": "Prices"}]
    # one extraction: the page once, the media once, nothing else
    assert [p for _, p, _ in fake_youtube.log] == ["/yt/video/fakesolar01",
                                                    "/media/solar.webm"]


@pytest.mark.parametrize("flags,reason", [
    ({"sources.min_duration_s": 60}, "shorter than 60 s"),
    ({"sources.max_duration_s": 5}, "longer than 5 s"),
    ({"sources.after": "2026-02-01"}, "before 20260201"),
    ({"sources.title_exclude": "solar"}, "matches 'solar'"),
    ({"sources.title_include": "^cooking"}, "does not match '^cooking'"),
])
async def test_filtered_video_is_skipped_before_any_audio(
        fake_youtube: MediaServer, tmp_path: Path, flags: dict[str, Any], reason: str) -> None:
    add_solar(fake_youtube)
    out = await DownloadStage().run(item("fakesolar01"), ctx_for(tmp_path, **flags))
    assert out.finished_state == "skipped"
    assert reason in out.info["skipped"]
    assert out.info["meta"]["title"] == "Solar power explained"
    assert media_requests(fake_youtube) == []
    assert not list((tmp_path / "audio").glob("fakesolar01.*"))


async def test_live_and_shorts_filters(fake_youtube: MediaServer, tmp_path: Path) -> None:
    fake_youtube.youtube.video("fakelive001", "solar.webm", live_status="is_live")
    fake_youtube.youtube.video("fakeshort01", "solar.webm", media_type="short")
    ctx = ctx_for(tmp_path, **{"sources.skip_live": True, "sources.skip_shorts": True})
    out = await DownloadStage().run(item("fakelive001"), ctx)
    assert out.finished_state == "skipped" and "live stream" in out.info["skipped"]
    out = await DownloadStage().run(item("fakeshort01"), ctx)
    assert out.finished_state == "skipped" and "YouTube short" in out.info["skipped"]
    assert media_requests(fake_youtube) == []


async def test_unfiltered_video_downloads_with_filters_set(fake_youtube: MediaServer,
                                                           tmp_path: Path) -> None:
    add_solar(fake_youtube)
    ctx = ctx_for(tmp_path, **{"sources.min_duration_s": 5, "sources.title_include": "solar"})
    out = await DownloadStage().run(item("fakesolar01"), ctx)
    assert out.finished_state is None and media_requests(fake_youtube) == ["/media/solar.webm"]


async def test_premiere_waits_without_spending_an_attempt(fake_youtube: MediaServer,
                                                          tmp_path: Path) -> None:
    add_solar(fake_youtube, "premiere001", upcoming=True)
    ctx = ctx_for(tmp_path, **{"sources.skip_live": True})
    with pytest.raises(Cooldown) as err:
        await DownloadStage().run(item("premiere001"), ctx)
    assert err.value.kind == "upcoming"
    fake_youtube.youtube.videos["premiere001"].upcoming = False
    out = await DownloadStage().run(item("premiere001"), ctx)
    assert out.finished_state is None and out.fields["audio_path"]


def follow_ctx(tmp_path: Path, clock: FakeClock, key: str, url: str,
               **filters: Any) -> FakeContext:
    settings = config.load(flags={"data_dir": str(tmp_path),
                                  "download.delay_buffer_build_s": [0, 0],
                                  "download.delay_steady_s": [0, 0],
                                  "sources.follow_interval_h": 1.0})
    ctx = FakeContext(settings, clock=clock, counts={"queued": 1})
    ctx.followed[key] = Follow(id=key.removeprefix("follow:"), url=url, kind="channel",
                               added_at=clock.now(), filters=filters).to_json()
    return ctx


async def test_followed_channel_adds_new_uploads_only(fake_youtube: MediaServer,
                                                      tmp_path: Path) -> None:
    site, clock = fake_youtube.youtube, FakeClock()
    for vid in ("fakeupload1", "fakeupload2", "fakeupload3"):
        site.video(vid, "solar.webm")
    uploads = site.channel("@fakechan", ["fakeupload1"])
    url = "https://www.youtube.com/@fakechan/videos"
    ctx = follow_ctx(tmp_path, clock, "follow:channel:@fakechan", url)
    stage = DownloadStage()

    def listings() -> int:
        return sum(1 for _, p, _ in fake_youtube.log if p.startswith("/yt/channel/"))

    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    assert ctx.added == [("https://www.youtube.com/watch?v=fakeupload1", "channel:@fakechan")]
    assert listings() == 1
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))  # not due yet: no request
    assert listings() == 1
    clock.advance(3600)
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))  # unchanged: one listing
    assert listings() == 2 and len(ctx.added) == 1
    uploads[:0] = ["fakeupload3", "fakeupload2"]  # two uploads, newest first
    clock.advance(3600)
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    assert listings() == 3
    assert [u for u, _ in ctx.added] == [f"https://www.youtube.com/watch?v={v}" for v in
                                        ("fakeupload1", "fakeupload2", "fakeupload3")]
    state = Follow.from_json(ctx.followed["follow:channel:@fakechan"])
    assert (state.checks, state.found, state.last_found, state.error) == (3, 3, 2, None)
    assert state.title == "Channel @fakechan"


async def test_follow_check_errors_are_recorded_and_unfollow_wins(fake_youtube: MediaServer,
                                                                  tmp_path: Path) -> None:
    clock = FakeClock()
    ctx = follow_ctx(tmp_path, clock, "follow:channel:@nochannel",
                     "https://www.youtube.com/@nochannel/videos")
    stage = DownloadStage()
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    state = Follow.from_json(ctx.followed["follow:channel:@nochannel"])
    assert state.checks == 1 and "does not exist" in str(state.error)
    assert state.next_check_at == clock.now() + 3600
    ctx.followed["follow:channel:@nochannel"] = None  # `ytpiped unfollow`
    clock.advance(3600)
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    assert ctx.followed["follow:channel:@nochannel"] is None


async def test_followed_source_filters_apply_to_its_videos(fake_youtube: MediaServer,
                                                           tmp_path: Path) -> None:
    add_solar(fake_youtube)
    ctx = follow_ctx(tmp_path, FakeClock(), "follow:channel:@fakechan",
                     "https://www.youtube.com/@fakechan/videos", min_duration_s=60.0)
    row = Item(id="fakesolar01", url="https://www.youtube.com/watch?v=fakesolar01",
               kind="video", state="downloading", attempts=0, parent_id="channel:@fakechan")
    out = await DownloadStage().run(row, ctx)
    assert out.finished_state == "skipped" and "shorter than 60 s" in out.info["skipped"]
    assert (await DownloadStage().run(item("fakesolar01"), ctx)).finished_state is None


async def test_a_video_retry_queued_anyway_is_not_filtered_again(fake_youtube: MediaServer,
                                                                tmp_path: Path) -> None:
    add_solar(fake_youtube)
    ctx = ctx_for(tmp_path, **{"sources.min_duration_s": 60.0})
    out = await DownloadStage().run(item("fakesolar01"), ctx)
    assert out.finished_state == "skipped" and "shorter than 60 s" in out.info["skipped"]
    again = dataclasses.replace(item("fakesolar01"), info={"unfiltered": True})  # `retry`
    out = await DownloadStage().run(again, ctx)
    assert out.finished_state is None and out.fields["audio_path"]


def episode(server: MediaServer, name: str, vid: str, **behaviour: Any) -> Item:
    return Item(id=vid, url=server.media_url(name, **behaviour), kind="generic",
                state="downloading", attempts=0, parent_id="url-feed")


async def test_feed_episodes_get_their_own_pacing_not_youtubes(fake_youtube: MediaServer,
                                                                tmp_path: Path) -> None:
    clock = FakeClock()
    ctx = FakeContext(config.load(flags={"data_dir": str(tmp_path),
                                         "download.other_hosts_delay_s": [50, 50],
                                         "download.max_videos_per_hour": 1}), clock=clock)
    stage = DownloadStage()
    await clock.drive(asyncio.ensure_future(stage.run(episode(fake_youtube, "solar.webm",
                                                              "episode0001"), ctx)))
    started = clock.monotonic()
    await clock.drive(asyncio.ensure_future(stage.run(episode(fake_youtube, "coffee.m4a",
                                                              "episode0002"), ctx)))
    assert clock.monotonic() - started >= 50  # download.other_hosts_delay_s
    assert stage.pacer is not None and stage.pacer.rate_per_hour(clock.now()) == 0
    limited = asyncio.ensure_future(stage.run(
        episode(fake_youtube, "ocean.mp3", "episode0003", status=429), ctx))
    await clock.drive(limited)
    with pytest.raises(Cooldown) as err:  # that host's rate limit: only this episode waits
        limited.result()
    assert err.value.kind == "rate_limited"
    assert stage.pacer.cooldown_until == 0.0


@pytest.mark.parametrize("feed_answers", ["episodes", "429"])
async def test_a_followed_feed_is_listed_while_youtube_cools_down_and_paced_by_its_host(
        fake_youtube: MediaServer, tmp_path: Path, feed_answers: str) -> None:
    """A podcast feed is not YouTube's: YouTube's cooldown does not hold its listing, and
    the listing (or its own 429) neither spends YouTube's budget nor cools YouTube down."""
    clock = FakeClock()
    settings = config.load(flags={"data_dir": str(tmp_path),
                                  "download.rate_limit_cooldown_s": 10**6,
                                  "download.other_hosts_delay_s": [50, 50],
                                  "sources.follow_interval_h": 1.0})
    ctx = FakeContext(settings, clock=clock, counts={"queued": 1})
    url = (fake_youtube.feed_url("show.xml", "solar.webm", "coffee.m4a")
           if feed_answers == "episodes" else fake_youtube.media_url("show.xml", status=429))
    ctx.followed["follow:url-show"] = Follow(id="url-show", url=url, kind="generic",
                                             added_at=clock.now()).to_json()
    ctx.ready["other_hosts"] = clock.now()  # the gate returns once the listing is done
    stage = DownloadStage()
    pacer = stage._pacer(ctx)
    until = pacer.enter_cooldown(clock.now(), "rate_limited")  # YouTube answered 429
    await clock.drive(asyncio.ensure_future(stage.gate(ctx)))
    assert stage.claim_only == "other_hosts"
    state = Follow.from_json(ctx.followed["follow:url-show"])
    assert state.checks == 1  # listed although YouTube cools down for 10**6 s
    if feed_answers == "episodes":
        assert len(ctx.added) == 2 and {p for _, p in ctx.added} == {"url-show"}
    else:
        assert "rate_limited" in str(state.error) and not ctx.added
    assert (pacer.cooldown_until, pacer.cooldown_level) == (until, 1)  # YouTube's as it was
    assert pacer.rate_per_hour(clock.now()) == 0
    host = fake_youtube.host
    assert stage.other is not None and stage.other.next_at(clock.now(), host) >= \
        clock.now() + 49  # the feed's host keeps its own pause
