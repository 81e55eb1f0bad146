"""The web page's handlers over a real SQLite store on tmp_path and real output files
(aiohttp's test client): every page and JSON endpoint, the Host check, the token, the
CSRF check, read-only mode, escaping, and that no secret reaches a page."""

from __future__ import annotations

import asyncio
import importlib.machinery
import json
import re
import sys
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ytpiped import status as status_mod
from ytpiped.store import Event, NewVideo, SqliteDB, db_path
from ytpiped.store.blocking import BlockingStore
from ytpiped.store.postgres import PostgresStore
from ytpiped.web import history
from ytpiped.web.app import Source, WebApp
from ytpiped.web.sources import sqlite_reader

YT = "dQw4w9WgXcQ"
HOSTILE = "<script>alert(1)</script>"
TOKEN = "a-web-token-0123456789"
NOW = 1_800_000_000.0


class RecordedActions:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    async def retry(self, stage: str | None, kind: str | None) -> int:
        self.calls.append(("retry", stage, kind))
        return 1

    async def hold(self, stage: str, action: str) -> None:
        self.calls.append((action, stage, None))


def make_data(data: Path) -> None:
    """Four videos: two downloaded (one with a transcript and claims, one whose title is
    HTML), two failed in download as unavailable; two points of plot history."""
    s = SqliteDB(db_path(data), now=NOW)
    s.add_videos([NewVideo(YT, f"https://www.youtube.com/watch?v={YT}", "video"),
                  NewVideo("url-bad1", "https://media.example/a.webm", "generic"),
                  NewVideo("url-bad2", "https://media.example/b.webm", "generic"),
                  NewVideo("url-html", "https://media.example/c.webm", "generic")], now=NOW)
    # walk the good video to done, fail the two others in download
    for row in s.claim("download", "t", NOW, 60, limit=10):
        if row.id.startswith("url-bad"):
            s.fail(row.id, "t", "downloading", NOW + 1, kind="unavailable",
                   error=f"HTTP Error 404 for {row.id}",
                   event=Event("failed", "download", "unavailable", "HTTP 404"))
        else:
            s.complete(row.id, "t", "downloading", "downloaded", NOW + 2,
                       fields={"title": HOSTILE if row.id == "url-html" else "Good talk",
                               "duration_s": 125.0},
                       event=Event("completed", "download"))
    s.set_state(history.KEY, [history.point(status_mod.build(s, NOW, None), NOW - 600),
                              history.point(status_mod.build(s, NOW, None), NOW - 300)], NOW)
    s.close()
    (data / "transcripts").mkdir(parents=True, exist_ok=True)
    (data / "transcripts" / f"{YT}.json").write_text(json.dumps({"segments": [
        {"start": 0.0, "end": 4.0, "text": "Hello and welcome."},
        {"start": 65.5, "end": 70.0, "text": "Solar panels got cheaper."}]}))
    (data / "mining").mkdir(parents=True, exist_ok=True)
    (data / "mining" / f"{YT}.json").write_text(json.dumps({
        "summary": "A talk about solar power.",
        "claims": [{"text": "Solar panels got cheaper.", "type": "factual",
                    "evidence": "Solar panels got cheaper.", "start": 65.5, "end": 70.0,
                    "confidence": 0.9, "importance": 8, "rank": 1}],
        "evaluation": {"status": "ok", "summary": "A talk about solar power."},
        "provenance": {"model": "m"}}))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    make_data(d)
    return d


def source(data: Path) -> Source:
    async def status() -> dict[str, Any]:
        s = SqliteDB(db_path(data), readonly=True)
        try:
            return status_mod.build(s, NOW, None)
        finally:
            s.close()
    return Source(data, status, sqlite_reader(data), "test")


Client = Callable[..., Any]


@pytest.fixture
async def client(data: Path) -> AsyncIterator[Callable[..., Any]]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**kw: Any) -> TestClient[Any, Any]:
        c = TestClient(TestServer(WebApp(source(data), **kw).app()))
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


async def test_overview_shows_the_counts_of_status_and_plots_the_history(
        client: Client, data: Path) -> None:
    c = await client()
    resp = await c.get("/")
    html = await resp.text()
    assert resp.status == 200
    st = await (await c.get("/api/status")).json()
    for state, n in st["videos"]["by_state"].items():
        assert f'data-count="{state}">{n}<' in html
    assert st["videos"]["by_state"]["failed"] == 2 and st["videos"]["by_state"]["downloaded"] == 2
    # two stored points and the present one
    backlog = re.search(r'id="plot-backlog">.*?</figure>', html)
    assert backlog and 'data-points="3"' in backlog.group(0)
    assert "Content-Security-Policy" in resp.headers
    assert resp.headers["X-Frame-Options"] == "DENY"
    points = (await (await c.get("/api/history")).json())["points"]
    assert len(points) == 3 and points[-1]["n"][history.STATE_ORDER.index("failed")] == 2


async def test_video_page_has_metadata_history_claims_and_time_links(client: Client) -> None:
    c = await client()
    resp = await c.get(f"/video/{YT}")
    html = await resp.text()
    assert resp.status == 200
    assert "Good talk" in html and "A talk about solar power." in html
    assert f'href="https://www.youtube.com/watch?v={YT}&amp;t=65s"' in html  # segment time
    assert "01:05" in html and "Solar panels got cheaper." in html
    assert "<blockquote>Solar panels got cheaper.</blockquote>" in html  # evidence
    assert "completed" in html  # the history table
    j = await (await c.get(f"/api/video/{YT}")).json()
    assert j["state"] == "downloaded" and j["events"][0]["event"] == "completed"
    assert j["transcript"]["segments"][1]["start"] == 65.5 and j["mining"]["claims"]
    assert (await c.get("/video/nope")).status == 404
    assert (await c.get("/api/video/nope")).status == 404


async def test_a_generic_url_gets_a_media_fragment_time_link(client: Client, data: Path) -> None:
    (data / "transcripts" / "url-html.json").write_text(json.dumps(
        {"segments": [{"start": 12.0, "end": 13.0, "text": "hi"}]}))
    html = await (await (await client()).get("/video/url-html")).text()
    assert 'href="https://media.example/c.webm#t=12"' in html


async def test_remote_text_is_escaped(client: Client) -> None:
    c = await client()
    for path in ("/videos", "/video/url-html", "/videos?state=downloaded"):
        html = await (await c.get(path)).text()
        assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_failures_are_grouped_by_stage_and_kind(client: Client) -> None:
    c = await client()
    html = await (await c.get("/failures")).text()
    assert 'data-stage="download" data-kind="unavailable"' in html
    assert "HTTP Error 404 for url-bad1" in html and "HTTP Error 404 for url-bad2" in html
    groups = (await (await c.get("/api/failures")).json())["groups"]
    assert [(g["stage"], g["kind"], g["count"]) for g in groups] == \
        [("download", "unavailable", 2)]


async def test_video_list_and_health(client: Client) -> None:
    c = await client()
    html = await (await c.get("/videos?state=failed")).text()
    assert "/video/url-bad1" in html and f"/video/{YT}" not in html
    assert await (await c.get("/healthz")).text() == "ok\n"
    css = await c.get("/static/app.css")
    assert css.status == 200 and "font" in await css.text()
    assert (await c.get("/static/app.js")).status == 200


async def test_a_foreign_host_header_is_refused(client: Client) -> None:
    c = await client()
    resp = await c.get("/", headers={"Host": "rebind.attacker.example:8765"})
    assert resp.status == 403 and "Host header not allowed" in await resp.text()
    assert (await c.get("/", headers={"Host": "localhost:8765"})).status == 200
    assert (await c.get("/", headers={"Host": "[::1]:8765"})).status == 200


async def test_actions_need_the_csrf_token(client: Client) -> None:
    actions = RecordedActions()
    c = await client(actions=actions)
    html = await (await c.get("/failures")).text()
    token = csrf_of(html)
    bad = await c.post("/actions/retry", data={"csrf": "forged", "stage": "download"},
                       allow_redirects=False)
    assert bad.status == 403 and actions.calls == []
    none = await c.post("/actions/retry", data={"stage": "download"}, allow_redirects=False)
    assert none.status == 403 and actions.calls == []
    ok = await c.post("/actions/retry", data={"csrf": token, "stage": "download",
                                              "kind": "unavailable"}, allow_redirects=False)
    assert ok.status == 303 and actions.calls == [("retry", "download", "unavailable")]
    after = await c.get(ok.headers["Location"])
    assert "re-queued 1 failed video<" in await after.text()
    foreign = await c.post("/actions/pause", data={"csrf": token, "stage": "download"},
                           headers={"Origin": "http://evil.example"}, allow_redirects=False)
    assert foreign.status == 403
    csrf_overview = csrf_of(await (await c.get("/")).text())
    paused = await c.post("/actions/pause", data={"csrf": csrf_overview, "stage": "mine"},
                          allow_redirects=False)
    assert paused.status == 303 and actions.calls[-1] == ("pause", "mine", None)
    unknown = await c.post("/actions/pause", data={"csrf": token, "stage": "nope"})
    assert unknown.status == 400 and "unknown stage" in await unknown.text()


async def test_read_only_without_actions_or_off_loopback_without_a_token(
        client: Client) -> None:
    for c in (await client(), await client(actions=RecordedActions(), bind="0.0.0.0")):
        for path in ("/", "/failures"):
            html = await (await c.get(path)).text()
            assert 'name="csrf"' not in html and "read-only" in html
        resp = await c.post("/actions/retry", data={"csrf": "x"})
        assert resp.status == 403 and "read-only" in await resp.text()


async def test_a_token_guards_every_request_and_enables_actions_off_loopback(
        client: Client) -> None:
    actions = RecordedActions()
    c = await client(actions=actions, bind="0.0.0.0", token=TOKEN)
    resp = await c.get("/")
    assert resp.status == 401 and TOKEN not in await resp.text()
    assert (await c.get("/api/status")).status == 401
    assert (await c.get("/?token=wrong-token-0000000000")).status == 401
    bearer = await c.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status == 200
    login = await c.get(f"/failures?token={TOKEN}", allow_redirects=False)
    assert login.status == 303 and login.headers["Location"] == "/failures"
    assert "SameSite=Strict" in login.headers["Set-Cookie"]
    page = await c.get("/failures")  # the cookie now
    html = await page.text()
    assert page.status == 200 and TOKEN not in html
    ok = await c.post("/actions/retry", data={"csrf": csrf_of(html)}, allow_redirects=False)
    assert ok.status == 303 and actions.calls == [("retry", None, None)]


async def test_no_secret_reaches_a_page(client: Client, data: Path) -> None:
    """A cookie value the daemon left in its published state (it does not; this is the
    net under it) and the token never show."""
    s = SqliteDB(db_path(data), now=NOW)
    s.set_state("stage:download", {"phase": "steady", "cookies_file": "/home/u/cookies.txt"},
                NOW)
    s.close()
    c = await client(actions=RecordedActions(), token=TOKEN)
    h = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/", "/failures", f"/video/{YT}", "/videos", "/api/status",
                 "/api/history", f"/api/video/{YT}", "/api/failures"):
        body = await (await c.get(path, headers=h)).text()
        assert TOKEN not in body, path


async def test_search_appears_only_when_the_search_module_exists(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ytpiped.search", None)  # a version without search
    absent = await client()
    assert (await absent.get("/search?q=solar")).status == 404
    assert 'action="/search"' not in await (await absent.get("/")).text()
    fake = types.ModuleType("ytpiped.search")
    fake.__spec__ = importlib.machinery.ModuleSpec("ytpiped.search", None)
    seen: list[str] = []

    def run(db: Any, text: str, limit: int = 20) -> list[dict[str, Any]]:
        seen.append(text)
        return [{"video_id": YT, "title": "Good talk", "kind": "claim", "time": "01:05",
                 "link": f"https://www.youtube.com/watch?v={YT}&t=65s",
                 "snippet": "**Solar** panels <i>"}]

    fake.run = run  # type: ignore[attr-defined]
    fake.hit_json = lambda hit: hit  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ytpiped.search", fake)
    c = await client()
    assert 'action="/search"' in await (await c.get("/")).text()
    html = await (await c.get("/search?q=solar")).text()
    assert seen == ["solar"] and f"watch?v={YT}&amp;t=65s" in html
    assert "<mark>Solar</mark> panels &lt;i&gt;" in html


async def test_pages_over_a_postgresql_store_as_the_daemon_reads_it(pg_url: str) -> None:
    """The daemon's page on PostgreSQL reads through its own pool (BlockingStore.on_loop)
    from the handlers' threads: failures, a video's events and the plot history."""
    store = PostgresStore(pg_url, NOW)
    await store.open()
    try:
        await store.add_videos([NewVideo(YT, f"https://www.youtube.com/watch?v={YT}", "video"),
                                NewVideo("url-pgbad", "https://e.example/x", "generic")],
                               now=NOW)
        for row in await store.claim("download", "w", NOW, 60, limit=2):
            if row.id == YT:
                await store.complete(row.id, "w", "downloading", "downloaded", NOW + 1,
                                     fields={"title": "PG talk"},
                                     event=Event("completed", "download"))
            else:
                await store.fail(row.id, "w", "downloading", NOW + 1, kind="forbidden",
                                 error="HTTP 403", event=Event("failed", "download",
                                                               "forbidden", "HTTP 403"))
        await store.set_state(history.KEY, [{"at": NOW - 60, "n": [1] * 12}], NOW)
        loop = asyncio.get_running_loop()

        async def status() -> dict[str, Any]:
            return await asyncio.to_thread(
                lambda: status_mod.build(BlockingStore.on_loop(store, loop), NOW, None))

        src = Source(Path("/nonexistent"), status, lambda: BlockingStore.on_loop(store, loop),
                     "daemon")
        async with TestClient(TestServer(WebApp(src).app())) as c:
            html = await (await c.get(f"/video/{YT}")).text()
            assert "PG talk" in html and "completed" in html
            groups = (await (await c.get("/api/failures")).json())["groups"]
            assert [(g["stage"], g["kind"], g["count"]) for g in groups] == \
                [("download", "forbidden", 1)]
            points = (await (await c.get("/api/history")).json())["points"]
            assert len(points) == 2 and points[0]["at"] == NOW - 60
    finally:
        await store.close()


async def test_overview_shows_alerts_holds_and_what_each_stage_waits_for(data: Path) -> None:
    base = source(data)

    async def status() -> dict[str, Any]:
        st = await base.status()
        st["daemon"]["running"] = True
        st["alerts"] = ["bot check: refresh the cookies file", "LLM down <b>"]
        st["stages"]["download"].update(phase="cooldown", paused=False,
                                        breaker={"state": "open", "kind": "bot_check"})
        st["stages"]["analyze"]["paused"] = True
        st["stages"]["mine"].update(llm="cooldown", tokens_per_s=12.5)
        st["hosts"] = [{"host": "gpu-1", "pid": 41, "silent_s": 3.0, "silent": False,
                        "stages": {"transcribe": {"running": 2, "slots": 3}}},
                       {"host": "gone-<x>", "pid": 9, "silent_s": 900.0, "silent": True,
                        "stages": {}}]
        return st

    src = Source(data, status, base.open_reader, "daemon")
    async with TestClient(TestServer(WebApp(src, actions=RecordedActions()).app())) as c:
        html = await (await c.get("/")).text()
    assert '<li class="alert">ALERT: bot check: refresh the cookies file</li>' in html
    assert "ALERT: LLM down &lt;b&gt;" in html
    assert "circuit breaker open after bot_check failures" in html
    assert "held by `ytpiped pause analyze`" in html
    assert 'action="/actions/resume"' in html  # a held stage offers resume
    assert "the LLM server (down or busy)" in html
    assert '<span id="tokens">12.5</span> tokens/s' in html
    assert '<dd id="phase">cooldown</dd>' in html
    assert '<tr data-host="gpu-1"><td>gpu-1</td>' in html and "transcribe 2/3" in html
    assert "gone-&lt;x&gt;" in html and "SILENT" in html  # each host of a shared store


async def test_search_page_finds_an_indexed_claim_with_its_deep_link(
        client: Client, data: Path) -> None:
    from ytpiped.store.search import ClaimDoc, SearchDocs

    s = SqliteDB(db_path(data), now=NOW)
    s.index_video(YT, SearchDocs(claims=(ClaimDoc(0, "Rooftop solar panels got cheaper",
                                                 "solar panels cost half", start_s=65.0),)))
    s.close()
    c = await client()
    html = await (await c.get("/search?q=solar")).text()
    assert f"watch?v={YT}&amp;t=65s" in html and "<mark>" in html
    empty = await (await c.get("/search?q=windmill")).text()
    assert f"watch?v={YT}" not in empty
    bad = await c.get("/search?q=%22unclosed")  # a query search cannot parse: said, not a 500
    assert bad.status == 200 and "is not closed" in await bad.text()


async def test_search_page_shows_a_video_whose_metadata_matched(
        client: Client, data: Path) -> None:
    from ytpiped.store.search import SearchDocs, video_doc

    s = SqliteDB(db_path(data), now=NOW)
    s.index_video(YT, SearchDocs(video=video_doc(
        {"description": "A walk past <b>geothermal</b> vents", "tags": ["iceland"]},
        "Good talk")))
    s.index_video("url-html", SearchDocs(video=video_doc({"tags": ["geothermal"]}, HOSTILE)))
    s.close()
    c = await client()
    html = await (await c.get("/search?q=geothermal")).text()
    # the video's link without a time, the field that matched, the match marked and escaped
    assert f"<a class='t' href='https://www.youtube.com/watch?v={YT}' rel='noreferrer'>" \
           "open</a> <span class='meta'>video · description</span>" in html
    assert "A walk past &lt;b&gt;<mark>geothermal</mark>&lt;/b&gt; vents" in html
    assert "<span class='meta'>video · tags</span><p><mark>geothermal</mark></p>" in html
    assert HOSTILE not in html and "&lt;script&gt;" in html
