from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ytpiped import config, control
from ytpiped.daemon import Daemon
from ytpiped.errors import ConfigError
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.stages import FakeStage


async def test_socket_serves_status_metrics_health(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = SqliteDB(db_path(data), now=0)
    s.add_videos([NewVideo(f"ctlvideo{i:03d}", "u", "video") for i in range(3)], now=0)
    s.close()
    stage = FakeStage("download", fail={f"ctlvideo{i:03d}": "hang" for i in range(3)},
                      concurrency=3)
    settings = config.load(flags={"data_dir": str(data), "daemon.shutdown_grace_s": 0.01})
    d = Daemon(settings, stages=[stage], environ={})
    task = asyncio.create_task(d.serve())
    async with asyncio.timeout(20):
        for _ in range(3):
            await stage.started.get()
        d.live["download"] = {"phase": "steady", "next_download_at": 123.0,
                              "alerts": ["bot check: refresh cookies"]}
        sock = data / control.SOCKET_NAME
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        raw = await control.fetch(data, "/status")
        assert raw is not None
        st = json.loads(raw)
        assert st["videos"]["by_state"]["downloading"] == 3
        assert st["stages"]["download"]["phase"] == "steady"
        assert st["alerts"] == ["bot check: refresh cookies"]
        assert st["daemon"]["running"] and st["daemon"]["source"] == "socket"
        assert 0 <= st["devices"]["cpu_percent"] <= 100
        assert isinstance(st["devices"]["gpus"], list)
        metrics = (await control.fetch(data, "/metrics") or b"").decode()
        got = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics) for s in f.samples}
        assert got[("ytpiped_videos", (("state", "downloading"),))] == 3
        assert "# TYPE ytpiped_videos gauge" in metrics
        assert got[("ytpiped_download_phase", (("phase", "steady"),))] == 1
        assert got[("ytpiped_download_next_timestamp_seconds", ())] == 123
        assert got[("ytpiped_alerts", ())] == 1
        assert got[("process_resident_memory_bytes", ())] > 0
        assert got[("ytpiped_data_dir_free_bytes", ())] > 0
        assert await control.fetch(data, "/healthz") == b"ok\n"
        d.stop.set()
        assert await task == 0
    assert not (data / control.SOCKET_NAME).exists()
    assert await control.fetch(data) is None


async def test_metrics_port_on_loopback(tmp_path: Path, unused_tcp_port: int) -> None:
    data = tmp_path / "data"
    settings = config.load(flags={"data_dir": str(data),
                                  "daemon.metrics_port": unused_tcp_port})
    d = Daemon(settings, stages=[], environ={})
    task = asyncio.create_task(d.serve())
    async with asyncio.timeout(20):
        await d.ready.wait()
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{unused_tcp_port}/metrics") as resp:
            body = await resp.text()
        assert resp.status == 200 and "ytpiped_build_info{" in body
        d.stop.set()
        await task


@contextlib.asynccontextmanager
async def serving(data: Path, **flags: Any) -> AsyncIterator[Daemon]:
    settings = config.load(flags={"data_dir": str(data), **flags})
    d = Daemon(settings, stages=[], environ={})
    task = asyncio.create_task(d.serve())
    async with asyncio.timeout(20):
        ready = asyncio.create_task(d.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            await task  # raises what made the daemon stop
        try:
            yield d
        finally:
            d.stop.set()
            assert await task == 0


async def get(url: str, host: str | None = None) -> tuple[int, str]:
    headers = {"Host": host} if host is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_tcp_listener_serves_metrics_and_health_but_not_status(
        tmp_path: Path, unused_tcp_port: int) -> None:
    data = tmp_path / "data"
    base = f"http://127.0.0.1:{unused_tcp_port}"
    async with serving(data, **{"daemon.metrics_port": unused_tcp_port}):
        assert await get(f"{base}/healthz") == (200, "ok\n")
        status, body = await get(f"{base}/metrics")
        assert status == 200 and "ytpiped_build_info{" in body
        status, body = await get(f"{base}/status")
        assert status == 404 and "videos" not in body
        # the unix socket (mode 0600, owner only) still serves everything
        raw = await control.fetch(data, "/status")
        assert raw is not None and "by_state" in json.loads(raw)["videos"]


async def test_tcp_listener_speaks_openmetrics_to_prometheus(tmp_path: Path,
                                                             unused_tcp_port: int) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}/metrics"
    prometheus = ("application/openmetrics-text;version=1.0.0;q=0.5,"
                  "text/plain;version=0.0.4;q=0.4,*/*;q=0.1")
    async with serving(tmp_path / "data", **{"daemon.metrics_port": unused_tcp_port}), \
            aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Accept": prometheus}) as resp:
            body = await resp.text()
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n") and "ytpiped_videos" in body
        async with session.get(url) as resp:
            assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost.evil.example",
                                  "127.0.0.1.nip.io:{port}", "", "[::1"])
async def test_tcp_listener_refuses_host_names_dns_rebinding_could_send(
        tmp_path: Path, unused_tcp_port: int, host: str) -> None:
    base = f"http://127.0.0.1:{unused_tcp_port}"
    async with serving(tmp_path / "data", **{"daemon.metrics_port": unused_tcp_port}):
        for path in ("/metrics", "/healthz"):
            status, body = await get(base + path, host.format(port=unused_tcp_port))
            assert status == 403, (path, host)
            assert "ytpiped_" not in body and "Host" in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}",
                                  "LocalHost", "[::1]:{port}", "192.168.1.20:9100"])
async def test_tcp_listener_answers_ip_literals_and_localhost(
        tmp_path: Path, unused_tcp_port: int, host: str) -> None:
    base = f"http://127.0.0.1:{unused_tcp_port}"
    async with serving(tmp_path / "data", **{"daemon.metrics_port": unused_tcp_port}):
        status, body = await get(f"{base}/metrics", host.format(port=unused_tcp_port))
        assert status == 200 and "ytpiped_build_info{" in body


async def test_metrics_bind_chooses_the_listening_address(tmp_path: Path,
                                                          unused_tcp_port: int) -> None:
    async with serving(tmp_path / "data", **{"daemon.metrics_port": unused_tcp_port,
                                             "daemon.metrics_bind": "127.0.0.2"}):
        status, body = await get(f"http://127.0.0.2:{unused_tcp_port}/metrics")
        assert status == 200 and "ytpiped_build_info{" in body
        with pytest.raises(aiohttp.ClientConnectorError):
            await get(f"http://127.0.0.1:{unused_tcp_port}/metrics")


async def test_metrics_bind_must_be_an_ip_address(tmp_path: Path, unused_tcp_port: int) -> None:
    data = tmp_path / "data"
    with pytest.raises(ConfigError, match=r"'daemon\.metrics_bind'.*'metrics\.example\.com'"):
        async with serving(data, **{"daemon.metrics_port": unused_tcp_port,
                                    "daemon.metrics_bind": "metrics.example.com"}):
            pass
    assert not (data / control.SOCKET_NAME).exists()


async def test_metrics_port_in_use_names_the_key_and_leaves_no_socket(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"'daemon\.metrics_port'.*127\.0\.0\.1:{port}"
                                              r".*already in use"):
            async with serving(data, **{"daemon.metrics_port": port}):
                pass
    assert not (data / control.SOCKET_NAME).exists()
