"""A local media server for tests and the demo: serves the committed speech fixtures as if
they were videos, to real yt-dlp (generic extractor), on 127.0.0.1.

Behaviour is part of the URL, so a URL list describes a whole scenario:

    /media/solar.webm                     the file
    /media/solar.webm?status=429&times=2  429 (with Retry-After) twice, then the file
    /media/x.webm?status=404              always 404 (also 403, 500, …)
    /media/ocean.mp3?slow=20000           trickle at 20,000 bytes/s
    /media/ocean.mp3?truncate=1           announce the full length, send half, close

Run alone: python -m ytpiped.testing.media_server --port 8089
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mimetypes
from collections import Counter
from pathlib import Path

from aiohttp import web

MEDIA_DIR = Path(__file__).resolve().parent / "media"
CHUNK = 8192


class MediaServer:
    def __init__(self, media_dir: Path = MEDIA_DIR, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.media_dir = media_dir
        self.host, self.port = host, port
        self.hits: Counter[str] = Counter()  # path?query -> requests seen
        self.log: list[tuple[str, str, int]] = []  # (method, path?query, status)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def media_url(self, name: str, **behaviour: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in behaviour.items())
        return f"{self.url}/media/{name}" + (f"?{query}" if query else "")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.path_qs
        self.hits[key] += 1
        q = request.query
        status = int(q.get("status", "200"))
        times = int(q.get("times", "0"))  # 0: always
        failing = status != 200 and (times == 0 or self.hits[key] <= times)
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
        try:
            for i in range(0, len(body), CHUNK):
                await resp.write(body[i:i + CHUNK])
                if rate:
                    await asyncio.sleep(CHUNK / rate)
            if q.get("truncate"):
                if request.transport is not None:
                    request.transport.close()  # the client sees a short body
                return resp
            await resp.write_eof()
        except ConnectionResetError:  # the client only wanted the headers
            pass
        return resp

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/media/{name}", self.handle)
        app.router.add_route("HEAD", "/media/{name}", self.handle)
        return app

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
