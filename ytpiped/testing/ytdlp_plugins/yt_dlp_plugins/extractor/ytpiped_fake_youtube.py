"""yt-dlp plugin entry point of the fake YouTube (see ytpiped.testing.ytdlp_plugin)."""

from __future__ import annotations

from ytpiped.testing.ytdlp_plugin import FakeYoutubeBase


class YtpipedFakeYoutubeIE(FakeYoutubeBase):
    pass
