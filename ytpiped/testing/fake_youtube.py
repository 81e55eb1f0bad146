"""A small "fake YouTube" that the media server serves, for real yt-dlp to download from.

The site is data: videos (metadata, chapters, subtitle tracks, SponsorBlock segments, a
premiere that is not available yet), channels whose listing can grow between checks. The
media server answers it as JSON under /yt/ and as SponsorBlock's API under /sb/; the
yt-dlp extractor plugin (`ytpiped.testing.ytdlp_plugin`, loaded by yt-dlp's own plugin
system from PLUGIN_DIR) turns YouTube URLs into requests to it when the environment
variable FAKE_YOUTUBE_SERVER names the server. So a test adds
`https://www.youtube.com/watch?v=<id>` like a user would, and yt-dlp extracts, selects a
format, downloads, fetches subtitles and SponsorBlock segments itself.

    site = server.youtube
    site.video("fakevideo01", media="solar.webm", title="Solar", chapters=[(0, 5, "Intro")],
               subtitles={"en": [(0.0, 4.0, "Solar panels …")]}, sponsor=[(5.0, 7.0)])
    site.channel("@fakechannel", ["fakevideo01"])   # newest first; append to grow it
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

PLUGIN_DIR = Path(__file__).resolve().parent / "ytdlp_plugins"
ENV = "FAKE_YOUTUBE_SERVER"

Cue = tuple[float, float, str]


@dataclass
class FakeVideo:
    id: str
    media: str  # a file name under the media server's /media/ (with a behaviour query)
    title: str = ""
    channel: str = "Fake Channel"
    channel_id: str = "UCfakefakefakefakefake01"
    upload_date: str = "20260101"
    duration: float | None = None
    description: str = ""
    tags: list[str] = field(default_factory=list)
    language: str | None = "en"
    chapters: list[tuple[float, float, str]] = field(default_factory=list)
    subtitles: dict[str, list[Cue]] = field(default_factory=dict)  # human-made
    auto_subtitles: dict[str, list[Cue]] = field(default_factory=dict)
    sponsor: list[tuple[float, float, str]] = field(default_factory=list)
    live_status: str = "not_live"  # "is_live", "is_upcoming", "was_live"
    media_type: str = "video"  # "short" for a YouTube short
    upcoming: bool = False  # a premiere: "Premieres in 5 minutes" until set False


@dataclass
class FakeYoutube:
    """The site's content; tests change it between checks."""

    videos: dict[str, FakeVideo] = field(default_factory=dict)
    channels: dict[str, list[str]] = field(default_factory=dict)  # key -> ids, newest first

    def video(self, vid: str, media: str, **meta: Any) -> FakeVideo:
        v = FakeVideo(id=vid, media=media, **meta)
        if not v.title:
            v.title = f"Video {vid}"
        self.videos[vid] = v
        return v

    def channel(self, key: str, ids: list[str]) -> list[str]:
        """A channel (`@handle` or `UC…` id) listing `ids`, newest first (the list is kept:
        insert at 0 to upload)."""
        self.channels[key] = ids
        return ids

    def routes(self) -> list[web.RouteDef]:
        site = self

        async def video(request: web.Request) -> web.Response:
            v = site.videos.get(request.match_info["id"])
            if v is None:
                return web.json_response({"error": "Video unavailable"}, status=404)
            base = f"{request.scheme}://{request.host}"
            return web.json_response(site.video_json(v, base))

        async def channel(request: web.Request) -> web.Response:
            key = request.match_info["key"]
            if key not in site.channels:
                return web.json_response({"error": "This channel does not exist."}, status=404)
            entries = [site.entry_json(site.videos[i]) for i in site.channels[key]
                       if i in site.videos]
            return web.json_response({"id": key, "title": f"Channel {key}",
                                      "entries": entries})

        async def subs(request: web.Request) -> web.Response:
            v = site.videos.get(request.match_info["id"])
            lang, kind = request.match_info["lang"], request.match_info["kind"]
            tracks = (v.subtitles if kind == "manual" else v.auto_subtitles) if v else {}
            if lang not in tracks:
                return web.Response(status=404, text="no such track\n")
            return web.Response(text=vtt(tracks[lang]), content_type="text/vtt")

        async def sponsorblock(request: web.Request) -> web.Response:
            prefix = request.match_info["prefix"]
            wanted = json.loads(request.query.get("categories", "[]"))
            out = []
            for v in site.videos.values():
                if hashlib.sha256(v.id.encode()).hexdigest()[:4] != prefix:
                    continue
                segments = [{"segment": [s, e], "category": c, "actionType": "skip",
                             "UUID": f"{v.id}-{n}", "videoDuration": v.duration or 0,
                             "locked": 1, "votes": 5, "description": ""}
                            for n, (s, e, c) in enumerate(v.sponsor) if c in wanted]
                out.append({"videoID": v.id, "hash": hashlib.sha256(v.id.encode()).hexdigest(),
                            "segments": segments})
            if not out:
                return web.json_response([], status=404)
            return web.json_response(out)

        return [web.get("/yt/video/{id}", video), web.get("/yt/channel/{key}", channel),
                web.get("/yt/subs/{kind}/{id}/{lang}.vtt", subs),
                web.get("/sb/api/skipSegments/{prefix}", sponsorblock)]

    def video_json(self, v: FakeVideo, base: str) -> dict[str, Any]:
        def tracks(kind: str, found: dict[str, list[Cue]]) -> dict[str, Any]:
            return {lang: [{"ext": "vtt", "url": f"{base}/yt/subs/{kind}/{v.id}/{lang}.vtt"}]
                    for lang in found}

        return {"id": v.id, "title": v.title, "channel": v.channel, "channel_id": v.channel_id,
                "upload_date": v.upload_date, "duration": v.duration,
                "description": v.description, "tags": v.tags, "language": v.language,
                "chapters": [{"start_time": s, "end_time": e, "title": t}
                             for s, e, t in v.chapters] or None,
                "subtitles": tracks("manual", v.subtitles),
                "automatic_captions": tracks("auto", v.auto_subtitles),
                "live_status": "is_upcoming" if v.upcoming else v.live_status,
                "media_type": v.media_type,
                "upcoming": v.upcoming, "media_url": f"{base}/media/{v.media}"}

    def entry_json(self, v: FakeVideo) -> dict[str, Any]:
        """A flat listing's entry: what YouTube's channel page shows of a video."""
        return {"id": v.id, "title": v.title, "duration": v.duration,
                "live_status": "is_upcoming" if v.upcoming else v.live_status}


def vtt(cues: list[Cue]) -> str:
    def ts(t: float) -> str:
        h, rest = divmod(t, 3600)
        m, s = divmod(rest, 60)
        return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"

    body = "\n".join(f"{ts(s)} --> {ts(e)}\n{text}\n" for s, e, text in cues)
    return f"WEBVTT\nKind: captions\nLanguage: en\n\n{body}"


def plugin_env(server_url: str) -> dict[str, str]:
    """Environment for a subprocess whose yt-dlp should use the fake YouTube."""
    return {ENV: server_url}
