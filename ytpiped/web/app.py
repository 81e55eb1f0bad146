"""The web page: an aiohttp application over a `Source` (what to show) and, in the daemon,
`Actions` (what a person may change). The daemon serves it on `web.bind`:`web.port`;
`ytpiped web` serves it without a daemon, read-only.

GET  /                  overview: counts, stages and what each waits for, ETA, ALERTs, plots
GET  /videos[?state=S]  videos (of one state)
GET  /video/{id}        one video: metadata, history, claims, transcript with time links
GET  /failures          failed videos grouped by stage and kind
GET  /search?q=         videos, claims and transcripts (only when the search index exists)
GET  /api/status        the `ytpiped status --json` dict
GET  /api/history       the plots' points
GET  /api/video/{id}    one video as JSON
GET  /api/failures      the failure groups as JSON
POST /actions/retry | /actions/pause | /actions/resume   (form: csrf, stage, kind)

Safety: every request must name an IP address or localhost in its Host header (a page
elsewhere cannot reach this one through DNS rebinding); with `web.token` every request
needs the token; actions need the page's CSRF token, and are offered only when the page
listens on loopback or has a token, and never by `ytpiped web`.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import importlib.util
import ipaddress
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from ytpiped import logs
from ytpiped.control import host_allowed
from ytpiped.states import STAGES
from ytpiped.store.model import VideoRow
from ytpiped.web import history, pages
from ytpiped.web.files import video_files

STATIC = Path(__file__).parent / "static"
COOKIE = "ytpiped_web"
FAILED_LIMIT = 5000
LIST_LIMIT = 500
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Reader(Protocol):
    """The blocking reads the pages make (SqliteDB and BlockingStore have them)."""

    def get(self, video_id: str) -> VideoRow | None: ...
    def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]: ...
    def events_of(self, video_id: str) -> list[tuple[float, str | None, str, str | None,
                                                     str | None]]: ...
    def get_state(self, key: str) -> tuple[Any, float] | None: ...
    def close(self) -> None: ...


class Actions(Protocol):
    async def retry(self, stage: str | None, kind: str | None) -> int: ...
    async def hold(self, stage: str, action: str) -> None: ...


@dataclass
class Source:
    """Where the page reads from: the status dict (the daemon's, or built from the store)
    and a blocking reader opened per request in a thread."""

    data_dir: Path
    status: Callable[[], Awaitable[dict[str, Any]]]
    open_reader: Callable[[], Reader]
    mode: str  # shown in the header: "daemon", "ytpiped web"


def is_loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def search_module() -> Any | None:
    """`ytpiped.search` where it exists (the seam for the search page): the page is shown
    only when the module is there and its store can search."""
    if importlib.util.find_spec("ytpiped.search") is None:
        return None
    module = importlib.import_module("ytpiped.search")
    return module if hasattr(module, "run") and hasattr(module, "hit_json") else None


class WebApp:
    def __init__(self, source: Source, *, actions: Actions | None = None, bind: str = "127.0.0.1",
                 token: str = "", refresh_s: float = 10.0) -> None:
        self.source = source
        self.token = token
        # actions need a loopback address or a token, and something that can act
        self.actions = actions if actions is not None and (is_loopback(bind) or token) else None
        self.csrf = secrets.token_urlsafe(32)
        self.refresh_s = refresh_s
        self.search = search_module()
        self.log = logs.get("ytpiped.web")

    # ------------------------------------------------------------------ plumbing

    async def _read(self, fn: Callable[[Reader], Any]) -> Any:
        def run() -> Any:
            reader = self.source.open_reader()
            try:
                return fn(reader)
            finally:
                reader.close()
        return await asyncio.to_thread(run)

    def _page(self, title: str, body: str, active: str = "", refresh: bool = False
              ) -> web.Response:
        mode = self.source.mode + ("" if self.actions else " (read-only)")
        html = pages.layout(title, body, active=active, search=self.search is not None,
                            mode=mode, refresh_s=self.refresh_s if refresh else 0.0)
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host")):
            return web.Response(status=403, text="Host header not allowed: open ytpiped's web "
                                "page by IP address or localhost (through an SSH tunnel from "
                                "another machine)\n")
        if self.token and not self._authorized(request):
            given = request.query.get("token", "")
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                query = {k: v for k, v in request.query.items() if k != "token"}
                seen = web.Response(status=303, headers={
                    "Location": str(request.rel_url.with_query(query))})
                seen.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
                return seen
            return web.Response(status=401, text="this page needs web.token: open it once as "
                                "/?token=TOKEN, or send `Authorization: Bearer TOKEN`\n")
        resp = await handler(request)
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else request.cookies.get(COOKIE, "")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        r = app.router
        r.add_get("/", self.overview)
        r.add_get("/videos", self.videos)
        r.add_get("/video/{id}", self.video)
        r.add_get("/failures", self.failures)
        r.add_get("/search", self.search_page)
        r.add_get("/api/status", self.api_status)
        r.add_get("/api/history", self.api_history)
        r.add_get("/api/video/{id}", self.api_video)
        r.add_get("/api/failures", self.api_failures)
        r.add_post("/actions/{action}", self.act)
        r.add_get("/healthz", self.health)
        r.add_static("/static", STATIC)
        return app

    # ------------------------------------------------------------------ data

    async def _points(self, st: dict[str, Any]) -> list[history.Point]:
        found = await self._read(lambda r: r.get_state(history.KEY))
        points = list(found[0]) if found and isinstance(found[0], list) else []
        # the figures of this moment end every line
        return history.append(points, history.point(st, float(st.get("generated_at") or
                                                               time.time())))

    async def _video(self, video_id: str) -> dict[str, Any]:
        def read(r: Reader) -> tuple[VideoRow | None, list[Any]]:
            row = r.get(video_id)
            return row, (r.events_of(video_id) if row else [])
        row, events = await self._read(read)
        if row is None:
            raise web.HTTPNotFound(text=f"no video {video_id!r} in the database\n")
        transcript, mining = await asyncio.to_thread(video_files, self.source.data_dir, row)
        return {"row": row, "events": events, "transcript": transcript, "mining": mining}

    async def _groups(self) -> list[dict[str, Any]]:
        rows = await self._read(lambda r: r.videos("failed", FAILED_LIMIT))
        return pages.failure_groups(rows)

    # ------------------------------------------------------------------ pages

    async def overview(self, request: web.Request) -> web.Response:
        st = await self.source.status()
        body = pages.overview(st, await self._points(st), self.csrf if self.actions else None)
        return self._page("overview", body, "/", refresh=True)

    async def videos(self, request: web.Request) -> web.Response:
        state = request.query.get("state") or None
        rows = await self._read(lambda r: r.videos(state, LIST_LIMIT))
        return self._page("videos", pages.video_list(rows, state, LIST_LIMIT), "/videos")

    async def video(self, request: web.Request) -> web.Response:
        v = await self._video(request.match_info["id"])
        return self._page(v["row"].title or v["row"].id,
                          pages.video(v["row"], v["events"], v["transcript"], v["mining"]))

    async def failures(self, request: web.Request) -> web.Response:
        body = pages.failures(await self._groups(), self.csrf if self.actions else None)
        requeued = request.query.get("requeued", "")
        if requeued.isdigit():  # after a retry
            body = f'<p class="done" id="requeued">re-queued {int(requeued)} failed ' \
                   f'video{"" if requeued == "1" else "s"}</p>' + body
        return self._page("failures", body, "/failures")

    async def search_page(self, request: web.Request) -> web.Response:
        if self.search is None:
            raise web.HTTPNotFound(text="search is not available in this version\n")
        q = request.query.get("q", "").strip()
        hits, problem = None, None
        if q:
            module = self.search
            try:
                found = await self._read(lambda r: module.run(r, q, limit=50))
                hits = [module.hit_json(x) for x in found]
            except Exception as exc:  # no index yet, a bad query: said on the page
                problem = f"search failed: {exc}"
        return self._page("search", pages.search_page(q, hits, problem))

    async def api_status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.source.status(), dumps=json.dumps)

    async def api_history(self, request: web.Request) -> web.Response:
        st = await self.source.status()
        return web.json_response({"points": await self._points(st)})

    async def api_video(self, request: web.Request) -> web.Response:
        v = await self._video(request.match_info["id"])
        row: VideoRow = v["row"]
        return web.json_response({
            "id": row.id, "url": row.url, "title": row.title, "channel": row.channel,
            "upload_date": row.upload_date, "duration_s": row.duration_s, "state": row.state,
            "attempts": row.attempts, "failed_stage": row.failed_stage,
            "error_kind": row.error_kind, "error": row.error,
            "events": [{"at": e[0], "stage": e[1], "event": e[2], "kind": e[3],
                        "message": e[4]} for e in v["events"]],
            "transcript": v["transcript"], "mining": v["mining"]})

    async def api_failures(self, request: web.Request) -> web.Response:
        return web.json_response({"groups": await self._groups()})

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    # ------------------------------------------------------------------ actions

    async def act(self, request: web.Request) -> web.Response:
        if self.actions is None:
            raise web.HTTPForbidden(text="this page is read-only (`ytpiped web`, or a "
                                    "non-loopback web.bind without web.token)\n")
        form = await request.post()
        given = str(form.get("csrf", ""))
        origin = request.headers.get("Origin")
        if not given or not hmac.compare_digest(given.encode(), self.csrf.encode()) or (
                origin and origin.split("://", 1)[-1] != request.headers.get("Host")):
            raise web.HTTPForbidden(text="missing or stale CSRF token: reload the page and "
                                    "try again\n")
        stage = str(form.get("stage") or "") or None
        kind = str(form.get("kind") or "") or None
        if stage is not None and stage not in STAGES:
            raise web.HTTPBadRequest(text=f"unknown stage {stage!r}; one of {', '.join(STAGES)}\n")
        name = request.match_info["action"]
        if name == "retry":
            n = await self.actions.retry(stage, kind)
            self.log.info("web_action", action=name, stage=stage, kind=kind, requeued=n)
            raise web.HTTPSeeOther(f"/failures?requeued={n}")
        if name in ("pause", "resume") and stage is not None:
            await self.actions.hold(stage, name)
            self.log.info("web_action", action=name, stage=stage)
            raise web.HTTPSeeOther("/")
        raise web.HTTPBadRequest(text="unknown action (retry, pause or resume with a stage)\n")


async def serve(app: web.Application, bind: str, port: int) -> tuple[web.AppRunner, str]:
    """Listen; -> (runner, the page's address). OSError when the port cannot be had."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    real = runner.addresses[0][1] if runner.addresses else port  # what port 0 became
    host = f"[{bind}]" if ":" in bind else bind
    if bind in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return runner, f"http://{host}:{real}/"
