"""A local media server for tests and the demo: serves the committed speech fixtures as if
they were videos, to real yt-dlp (generic extractor), on 127.0.0.1.

Behaviour is part of the URL, so a URL list describes a whole scenario:

    /media/solar.webm                     the file
    /media/solar.webm?status=429&times=2  429 (with Retry-After) twice, then the file
    /media/x.webm?status=404              always 404 (also 403, 500, …)
    /media/ocean.mp3?slow=20000           trickle at 20,000 bytes/s
    /media/ocean.mp3?truncate=1           announce the full length, send half, close
    /page/two.html?media=a.mp3&media=b.webm   an HTML page with one <audio> tag per media
    /feed/show.xml?media=a.mp3&media=b.webm   a podcast RSS 2.0 feed, one episode per media
    /yt/…, /sb/…                          the fake YouTube of `server.youtube` (fake_youtube.py)

`media` values are names under /media/, with their own behaviour query if any
(`page_url`/`feed_url` encode it: feed_url("show.xml", "ocean.mp3?status=404")).
Setting `server.down = 403` makes every /media request answer that status (a site-wide
outage, or a site that blocks the downloader) until it is set back to None.

Run alone: python -m ytpiped.testing.media_server --port 8089
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import mimetypes
import time
from collections import Counter
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ytpiped.testing.fake_youtube import FakeYoutube

MEDIA_DIR = Path(__file__).resolve().parent / "media"
CHUNK = 8192


class MediaServer:
    def __init__(self, media_dir: Path = MEDIA_DIR, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.media_dir = media_dir
        self.host, self.port = host, port
        self.hits: Counter[str] = Counter()  # path?query -> requests seen
        self.log: list[tuple[str, str, int]] = []  # (method, path?query, status)
        # (start, end, path?query) of bodies: start once the headers went out, end just before
        # the last bytes did (so the client's download began before start, ended after end)
        self.served: list[tuple[float, float, str]] = []
        self.down: int | None = None  # every /media request answers this status
        self.youtube = FakeYoutube()  # /yt/ and /sb/: the fake YouTube (fake_youtube.py)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def media_url(self, name: str, **behaviour: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in behaviour.items())
        return f"{self.url}/media/{name}" + (f"?{query}" if query else "")

    def page_url(self, name: str, *media: str) -> str:
        """An HTML page with one <audio> tag per entry of `media`."""
        return f"{self.url}/page/{name}" + _query(media)

    def feed_url(self, name: str, *media: str) -> str:
        """A podcast RSS feed with one episode (an audio/mpeg enclosure) per entry of `media`."""
        return f"{self.url}/feed/{name}" + _query(media)

    async def page(self, request: web.Request) -> web.Response:
        self.hits[request.path_qs] += 1
        self.log.append((request.method, request.path_qs, 200))
        tags = "\n".join(f'<audio controls src="/media/{html.escape(m)}"></audio>'
                         for m in request.query.getall("media", []))
        body = (f"<!DOCTYPE html>\n<html><head><title>{html.escape(request.match_info['name'])}"
                f"</title></head>\n<body>\n<h1>Clips</h1>\n{tags}\n</body></html>\n")
        return web.Response(text=body, content_type="text/html")

    async def feed(self, request: web.Request) -> web.Response:
        self.hits[request.path_qs] += 1
        self.log.append((request.method, request.path_qs, 200))
        name = request.match_info["name"]
        items = []
        for n, media in enumerate(request.query.getall("media", []), start=1):
            url = html.escape(f"{self.url}/media/{media}")
            file = self.media_dir / media.split("?")[0]
            size = file.stat().st_size if file.is_file() else 0
            ctype = mimetypes.guess_type(file.name)[0] or "audio/mpeg"
            items.append(f"""    <item>
      <title>Episode {n}: {html.escape(file.name)}</title>
      <description>Episode {n} of the test podcast</description>
      <guid isPermaLink="false">{html.escape(name)}-episode-{n}</guid>
      <pubDate>{formatdate(1700000000 + n * 86400, usegmt=True)}</pubDate>
      <enclosure url="{url}" length="{size}" type="{ctype}"/>
      <itunes:episode>{n}</itunes:episode>
      <itunes:explicit>false</itunes:explicit>
    </item>""")
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
  <channel>
    <title>Test podcast {html.escape(name)}</title>
    <link>{self.url}/</link>
    <description>Episodes served by the ytpiped test media server</description>
    <language>en</language>
    <itunes:author>ytpiped tests</itunes:author>
    <itunes:explicit>false</itunes:explicit>
{chr(10).join(items)}
  </channel>
</rss>
"""
        return web.Response(text=body, content_type="application/rss+xml")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.path_qs
        self.hits[key] += 1
        q = request.query
        status = int(q.get("status", "200"))
        times = int(q.get("times", "0"))  # 0: always
        failing = status != 200 and (times == 0 or self.hits[key] <= times)
        if self.down is not None:
            status, failing = self.down, True
        if failing:
            headers = {"Retry-After": q.get("retry_after", "1")} if status in (429, 503) else {}
            self.log.append((request.method, key, status))
            return web.Response(status=status, text=f"{status} injected by the test server\n",
                                headers=headers)
        path = (self.media_dir / request.match_info["name"]).resolve()
        if path.parent != self.media_dir or not path.is_file():
            self.log.append((request.method, key, 404))
            return web.Response(status=404, text="File not found\n")
        data = await asyncio.to_thread(path.read_bytes)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".opus":
            ctype = "audio/ogg"
        self.log.append((request.method, key, 200))
        resp = web.StreamResponse(headers={"Content-Type": ctype,
                                           "Content-Length": str(len(data)),
                                           "Accept-Ranges": "none"})
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        body = data[: len(data) // 2] if q.get("truncate") else data
        rate = float(q.get("slow", "0"))
        started = ended = time.time()
        try:
            for i in range(0, len(body), CHUNK):
                if i + CHUNK >= len(body):
                    ended = time.time()
                await resp.write(body[i:i + CHUNK])
                if rate:
                    await asyncio.sleep(CHUNK / rate)
            if q.get("truncate"):
                if request.transport is not None:
                    request.transport.close()  # the client sees a short body
                return resp
            await resp.write_eof()
            self.served.append((started, ended, key))
        except ConnectionResetError:  # the client only wanted the headers
            pass
        return resp

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/media/{name}", self.handle)
        app.router.add_route("HEAD", "/media/{name}", self.handle)
        app.router.add_route("GET", "/page/{name}", self.page)
        app.router.add_route("GET", "/feed/{name}", self.feed)
        app.router.add_routes(self.youtube.routes())
        app.middlewares.append(self._count)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Count the fake YouTube's requests (media, pages and feeds count themselves)."""
        resp: web.StreamResponse = await handler(request)
        if request.path.startswith(("/yt/", "/sb/")):
            self.hits[request.path_qs] += 1
            self.log.append((request.method, request.path_qs, resp.status))
        return resp

    async def start(self) -> MediaServer:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MediaServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _query(media: tuple[str, ...]) -> str:
    return "?" + urlencode([("media", m) for m in media]) if media else ""


async def _serve(port: int) -> None:
    server = await MediaServer(port=port).start()
    print(f"media server on {server.url}/media/<name> serving {MEDIA_DIR}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m ytpiped.testing.media_server",
                                description="serve the speech fixtures to yt-dlp on 127.0.0.1")
    p.add_argument("--port", type=int, default=8089)
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
