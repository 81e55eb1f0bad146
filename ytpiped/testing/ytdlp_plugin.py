"""The yt-dlp extractor of the fake YouTube (ytpiped.testing.fake_youtube).

yt-dlp loads it through its plugin system (PLUGIN_DIR on sys.path or PYTHONPATH holds
`yt_dlp_plugins/extractor/ytpiped_fake_youtube.py`, which subclasses `FakeYoutubeBase`).
It claims YouTube URLs only while the environment variable FAKE_YOUTUBE_SERVER names a
media server, so loading it changes nothing anywhere else. What it returns is shaped like
yt-dlp's own YouTube extractor's results (extractor_key "Youtube", so SponsorBlock works),
and it fails like it: "Video unavailable", "Premieres in 5 minutes".
"""

from __future__ import annotations

import os
import re
from typing import Any

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError

from ytpiped.testing.fake_youtube import ENV

_VIDEO = re.compile(r"https?://(?:www\.|m\.)?(?:youtube\.com/(?:watch\?(?:.*&)?v=|shorts/)"
                    r"|youtu\.be/)(?P<id>[A-Za-z0-9_-]{11})")
_TAB = re.compile(r"https?://(?:www\.|m\.)?youtube\.com/(?:(?:channel/)?(?P<key>@?[\w.-]+)"
                  r"(?:/(?:videos|streams|shorts|featured))?/?$|playlist\?list=(?P<list>[\w-]+))")


class FakeYoutubeBase(InfoExtractor):  # type: ignore[misc]
    IE_NAME = "fakeyoutube"
    _VALID_URL = r"https?://(?:www\.|m\.)?(?:youtube\.com|youtu\.be)/.+"

    @classmethod
    def suitable(cls, url: str) -> bool:
        return bool(os.environ.get(ENV)) and bool(_VIDEO.match(url) or _TAB.match(url))

    def _real_extract(self, url: str) -> dict[str, Any]:
        base = os.environ[ENV].rstrip("/")
        m = _VIDEO.match(url)
        if m:
            return self._video(base, m.group("id"))
        tab = _TAB.match(url)
        assert tab is not None
        key = tab.group("key") or tab.group("list")
        got = self._download_json(f"{base}/yt/channel/{key}", key, expected_status=404)
        if "error" in got:
            raise ExtractorError(got["error"], expected=True)
        entries = [self.url_result(f"https://www.youtube.com/watch?v={e['id']}", "Youtube",
                                   e["id"], e.get("title"), duration=e.get("duration"),
                                   live_status=e.get("live_status"))
                   for e in got["entries"]]
        return dict(self.playlist_result(entries, key, got.get("title")))

    def _video(self, base: str, vid: str) -> dict[str, Any]:
        got = self._download_json(f"{base}/yt/video/{vid}", vid, expected_status=404)
        if "error" in got:
            raise ExtractorError(got["error"], expected=True, video_id=vid)
        if got.get("upcoming"):
            raise ExtractorError("Premieres in 5 minutes", expected=True, video_id=vid)
        media = got.pop("media_url")
        ext = media.split("?")[0].rsplit(".", 1)[-1]
        got.pop("upcoming", None)
        return {**got, "extractor_key": "Youtube", "extractor": "youtube",
                "webpage_url": f"https://www.youtube.com/watch?v={vid}",
                "formats": [{"format_id": "251", "url": media, "ext": ext,
                             "vcodec": "none", "acodec": "opus" if ext == "webm" else ext}]}
