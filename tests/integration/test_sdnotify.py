from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from ytpiped import config
from ytpiped.daemon import Daemon
from ytpiped.sdnotify import Notifier
from ytpiped.testing.stages import FakeStage


def test_notifier_sends_datagrams(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000",
                      "WATCHDOG_PID": str(os.getpid())})
        assert n.enabled and n.watchdog_s == 2.0
        assert n.ready("running")
        assert server.recv(256) == b"READY=1\nSTATUS=running"
        assert n.watchdog()
        assert server.recv(256) == b"WATCHDOG=1"


def test_notifier_is_silent_without_socket() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.watchdog_s is None
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}
                    ).watchdog_s is None  # the watchdog is for another process


async def test_daemon_reports_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.setblocking(False)
    settings = config.load(flags={"data_dir": str(tmp_path / "data")})
    d = Daemon(settings, stages=[FakeStage("download")],
               environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    task = asyncio.create_task(d.serve())
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    async with asyncio.timeout(20):
        while b"WATCHDOG=1" not in got:
            got.append(await loop.sock_recv(server, 256))
        d.stop.set()
        assert await task == 0
        while b"STOPPING=1" not in got:
            got.append(await loop.sock_recv(server, 256))
    server.close()
    assert got[0].startswith(b"READY=1")
