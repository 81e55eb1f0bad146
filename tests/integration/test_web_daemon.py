"""The daemon serves the web page (same process) and keeps the plots' history; a busy
port costs the page, not the pipeline."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import aiohttp

from ytpiped import config, control
from ytpiped.daemon import Daemon
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.stages import FakeStage
from ytpiped.web import history


def _stored(data: Path, key: str) -> object:
    s = SqliteDB(db_path(data), readonly=True)
    try:
        found = s.get_state(key)
    finally:
        s.close()
    return None if found is None else found[0]


async def test_daemon_serves_the_page_records_history_and_takes_actions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = SqliteDB(db_path(data), now=0)
    s.add_videos([NewVideo(f"webvideo{i:03d}", "https://e.example/v", "video")
                  for i in range(3)], now=0)
    s.close()
    stage = FakeStage("download", fail={f"webvideo{i:03d}": "hang" for i in range(3)},
                      concurrency=3)
    settings = config.load(flags={"data_dir": str(data), "daemon.shutdown_grace_s": 0.01,
                                  "web.port": 0, "web.history_interval_s": 1})
    d = Daemon(settings, stages=[stage], environ={})
    task = asyncio.create_task(d.serve())
    async with asyncio.timeout(30):
        for _ in range(3):
            await stage.started.get()
        assert d.web_url is not None and d.web_url.startswith("http://127.0.0.1:")
        raw = await control.fetch(data, "/status")
        assert raw is not None
        st = json.loads(raw)
        async with aiohttp.ClientSession() as http:
            async with http.get(d.web_url) as resp:
                html = await resp.text()
            assert resp.status == 200 and "daemon</span>" in html
            for state, n in st["videos"]["by_state"].items():
                assert f'data-count="{state}">{n}<' in html
            assert 'data-count="downloading">3<' in html
            csrf = re.search(r'name="csrf" value="([^"]+)"', html)
            assert csrf, "actions are offered on loopback"
            async with http.post(d.web_url + "actions/pause",
                                 data={"csrf": csrf.group(1), "stage": "download"},
                                 allow_redirects=False) as resp:
                assert resp.status == 303
        held = _stored(data, "request:download")
        assert isinstance(held, dict) and held["action"] == "pause"
        points = _stored(data, history.KEY)
        while not points:  # the first point is written at start
            await asyncio.sleep(0.05)
            points = _stored(data, history.KEY)
        assert isinstance(points, list)
        # every video is counted in some state (the point may fall while the claims are made)
        assert sum(points[0]["n"]) == 3
        d.stop.set()
        assert await task == 0


async def test_a_busy_web_port_leaves_the_daemon_running(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = config.load(flags={"data_dir": str(data), "web.port": port})
        d = Daemon(settings, stages=[], environ={})
        task = asyncio.create_task(d.serve())
        async with asyncio.timeout(20):
            await d.ready.wait()
            assert d.web_url is None  # no page, the pipeline runs
            assert await control.fetch(data, "/healthz") == b"ok\n"
            d.stop.set()
            assert await task == 0


async def test_web_enabled_false_serves_no_page(tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path / "data"), "web.enabled": False})
    d = Daemon(settings, stages=[], environ={})
    task = asyncio.create_task(d.serve())
    async with asyncio.timeout(20):
        await d.ready.wait()
        assert d.web_url is None
        d.stop.set()
        assert await task == 0
