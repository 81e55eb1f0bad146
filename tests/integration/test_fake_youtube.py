"""The fake YouTube through the real yt-dlp: its extractor plugin, pages, listings,
subtitles and SponsorBlock answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yt_dlp

from ytpiped.testing.media_server import MediaServer


def extract(url: str, **params: Any) -> dict[str, Any]:
    with yt_dlp.YoutubeDL({"quiet": True, "skip_download": True, **params}) as ydl:
        info = ydl.extract_info(url, download=False)
        return dict(ydl.sanitize_info(info))


async def test_video_page_has_metadata_chapters_and_subtitles(fake_youtube: MediaServer
                                                              ) -> None:
    fake_youtube.youtube.video("fakevideo01", "solar.webm", title="Solar power",
                               duration=9.0, description="About the sun", tags=["solar"],
                               chapters=[(0.0, 4.0, "Intro"), (4.0, 9.0, "Prices")],
                               subtitles={"en": [(0.0, 4.0, "Solar panels.")]})
    info = await asyncio.to_thread(extract, "https://www.youtube.com/watch?v=fakevideo01")
    assert info["extractor_key"] == "Youtube" and info["id"] == "fakevideo01"
    assert (info["title"], info["description"], info["tags"]) == ("Solar power",
                                                                  "About the sun", ["solar"])
    assert [c["title"] for c in info["chapters"]] == ["Intro", "Prices"]
    assert info["subtitles"]["en"][0]["url"].endswith("/yt/subs/manual/fakevideo01/en.vtt")
    assert info["url"].endswith("/media/solar.webm")  # the format yt-dlp selected


async def test_channel_listing_grows_between_checks(fake_youtube: MediaServer) -> None:
    site = fake_youtube.youtube
    for vid in ("fakevideo01", "fakevideo02"):
        site.video(vid, "solar.webm")
    ids = site.channel("@fakechannel", ["fakevideo01"])
    url = "https://www.youtube.com/@fakechannel/videos"
    first = await asyncio.to_thread(extract, url, extract_flat="in_playlist")
    ids.insert(0, "fakevideo02")
    second = await asyncio.to_thread(extract, url, extract_flat="in_playlist")
    assert [e["id"] for e in first["entries"]] == ["fakevideo01"]
    assert [e["id"] for e in second["entries"]] == ["fakevideo02", "fakevideo01"]


async def test_premiere_and_unknown_video_fail_like_youtube(fake_youtube: MediaServer) -> None:
    fake_youtube.youtube.video("premiere001", "solar.webm", upcoming=True)
    with pytest.raises(yt_dlp.utils.DownloadError, match="Premieres in 5 minutes"):
        await asyncio.to_thread(extract, "https://www.youtube.com/watch?v=premiere001")
    fake_youtube.youtube.videos["premiere001"].upcoming = False
    info = await asyncio.to_thread(extract, "https://www.youtube.com/watch?v=premiere001")
    assert info["id"] == "premiere001"
    with pytest.raises(yt_dlp.utils.DownloadError, match="Video unavailable"):
        await asyncio.to_thread(extract, "https://www.youtube.com/watch?v=missing0001")


async def test_sponsorblock_answer_through_ytdlp(fake_youtube: MediaServer) -> None:
    from yt_dlp.postprocessor.sponsorblock import SponsorBlockPP

    fake_youtube.youtube.video("sponsored01", "solar.webm", duration=9.0,
                               sponsor=[(2.0, 4.0, "sponsor"), (5.0, 6.0, "intro")])

    def run() -> list[dict[str, Any]]:
        with yt_dlp.YoutubeDL({"quiet": True, "skip_download": True}) as ydl:
            ydl.add_post_processor(SponsorBlockPP(ydl, ["sponsor"], api=f"{fake_youtube.url}/sb"),
                                   when="pre_process")
            info = ydl.extract_info("https://www.youtube.com/watch?v=sponsored01")
            return list(info["sponsorblock_chapters"])

    chapters = await asyncio.to_thread(run)
    assert [(c["start_time"], c["end_time"], c["category"]) for c in chapters] == [
        (2.0, 4.0, "sponsor")]


async def test_plugin_is_inert_without_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from ytpiped.testing.ytdlp_plugin import FakeYoutubeBase

    monkeypatch.delenv("FAKE_YOUTUBE_SERVER", raising=False)
    assert not FakeYoutubeBase.suitable("https://www.youtube.com/watch?v=fakevideo01")
    with yt_dlp.YoutubeDL({"quiet": True}) as ydl:
        assert "YtpipedFakeYoutube" in {ie.ie_key() for ie in ydl._ies.values()}
