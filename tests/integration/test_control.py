from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import aiohttp

from ytpiped import config, control
from ytpiped.daemon import Daemon
from ytpiped.store import NewVideo, Store, db_path
from ytpiped.testing.stages import FakeStage


async def test_socket_serves_status_metrics_health(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = Store(db_path(data), now=0)
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
        assert 'ytpiped_videos{state="downloading"} 3.0' in metrics
        assert "# TYPE ytpiped_videos gauge" in metrics
        assert 'ytpiped_stage_in_progress{stage="download"} 3.0' in metrics
        assert "ytpiped_cpu_percent " in metrics
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
        assert resp.status == 200 and "ytpiped_up 1.0" in body
        d.stop.set()
        await task


def test_metrics_text_escapes_labels_and_nan() -> None:
    st = {"videos": {"by_state": {"queued": 1}}, "failures": {"by_kind": {'we"ird': 2}},
          "stages": {"download": {"phase": "steady", "rate_per_hour": 4.5}},
          "eta_seconds": None}
    text = control.metrics_text(st)
    assert 'ytpiped_failed_videos{kind="we\\"ird"} 2.0' in text
    assert 'ytpiped_stage_rate_per_hour{stage="download"} 4.5' in text
    assert "ytpiped_eta_seconds NaN" in text and "phase" not in text
