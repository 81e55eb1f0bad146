"""Control API of the running daemon: aiohttp on DATA/ytpiped.sock (mode 0600) and,
when `daemon.metrics_port` is set, on `daemon.metrics_bind`:PORT (default 127.0.0.1).

GET /status   the DESIGN.md §3 JSON plus live data published by the stages (socket only:
              titles, URLs and error messages are for the owner of the data dir)
GET /metrics  Prometheus metrics (ytpiped.metrics): the text format, or OpenMetrics when
              the scraper asks for it
GET /healthz  200 "ok" while the event loop answers

The TCP listener answers only requests whose Host header is an IP address or `localhost`:
a web page cannot reach it through DNS rebinding (its requests carry the page's host name).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from ytpiped import control_client
from ytpiped import status as status_mod
from ytpiped.control_client import SOCKET_NAME as SOCKET_NAME  # re-exported
from ytpiped.errors import ConfigError
from ytpiped.store import SqliteDB, StoreNotReady, db_path
from ytpiped.store.blocking import StatusReader

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def read_status(data_dir: Path, pid: int | None, live: Mapping[str, Mapping[str, Any]],
                now: float, open_reader: Callable[[], StatusReader] | None = None,
                ) -> dict[str, Any]:
    """Status from a fresh read-only connection (never blocks the daemon's writer), or from
    what `open_reader` opens (a PostgreSQL store)."""
    store: StatusReader
    if open_reader is not None:
        store = open_reader()
    else:
        try:
            store = SqliteDB(db_path(data_dir), readonly=True)
        except StoreNotReady:
            store = SqliteDB(Path(":memory:"))
    try:
        st = status_mod.build(store, now, pid)
    finally:
        store.close()
    for stage, data in live.items():
        extra = dict(data)
        st["suggestions"].extend(extra.pop("suggestions", []) or [])
        st["alerts"].extend(extra.pop("alerts", []) or [])
        if extra:
            st["stages"].setdefault(stage, {}).update(extra)
    st["daemon"]["source"] = "socket"
    st["devices"] = devices()
    return st


def devices() -> dict[str, Any]:
    """Live utilisation: CPU and RAM from psutil, GPUs from NVML (empty without one)."""
    import psutil

    from ytpiped import hardware

    snap = hardware.snapshot()
    vm = psutil.virtual_memory()
    return {"cpu_percent": psutil.cpu_percent(interval=None), "ram_percent": vm.percent,
            "gpus": [{"index": g.index, "name": g.name, "utilization_pct": g.utilization_pct,
                      "memory_used_mb": round(g.used_bytes / 2**20),
                      "memory_total_mb": round(g.total_bytes / 2**20)} for g in snap.gpus]}


def metrics_text(st: Mapping[str, Any], data_dir: Path | None = None) -> str:
    """The Prometheus text format of one scrape (ytpiped.metrics)."""
    from ytpiped import metrics

    return metrics.exposition(st, data_dir)[0].decode()


def host_allowed(host: str | None) -> bool:
    """True for a Host header naming an IP address or localhost, with or without a port.
    A browser sends the name of the page it runs; DNS rebinding needs that to be a name."""
    if not host:
        return False
    if host.startswith("["):  # [IPv6] or [IPv6]:port
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return False
    else:
        name, sep, port = host.rpartition(":")
        if not sep or not port.isdigit():
            name = host
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@web.middleware
async def _local_hosts_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not host_allowed(request.headers.get("Host")):
        return web.Response(status=403, text="Host header not allowed: ytpiped's metrics "
                            "listener answers requests to an IP address or localhost only\n")
    return await handler(request)


def bind_address(bind: str) -> str:
    """`daemon.metrics_bind` as an address to listen on; a ConfigError unless it is one."""
    try:
        return str(ipaddress.ip_address(bind))
    except ValueError:
        raise ConfigError(f"key 'daemon.metrics_bind': expected an IP address (127.0.0.1 for "
                          f"this machine only, 0.0.0.0 or :: for every interface), got "
                          f"{bind!r}") from None


class ControlServer:
    def __init__(self, data_dir: Path, live: Mapping[str, Mapping[str, Any]],
                 metrics_port: int = 0, metrics_bind: str = "127.0.0.1", *,
                 open_reader: Callable[[], StatusReader] | None = None) -> None:
        self.data_dir = data_dir
        self.open_reader = open_reader
        self.live = live
        self.metrics_port = metrics_port
        self.metrics_bind = metrics_bind
        self.socket_path = data_dir / SOCKET_NAME
        self._runners: list[web.AppRunner] = []
        self.requests = 0

    async def status(self) -> dict[str, Any]:
        """The status this daemon serves (also what the web page and its history show)."""
        live = {k: dict(v) for k, v in self.live.items()}
        return await asyncio.to_thread(read_status, self.data_dir, os.getpid(), live,
                                       time.time(), self.open_reader)

    async def handle_status(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(await self.status(), dumps=json.dumps)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        from ytpiped import metrics

        self.requests += 1
        st = await self.status()
        # the process collector reads /proc and the disk is asked for its free space: off
        # the event loop, like the status itself
        body, content_type = await asyncio.to_thread(
            metrics.exposition, st, self.data_dir, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type,
                                                "X-Content-Type-Options": "nosniff"})

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    def app(self) -> web.Application:
        """Everything, for the owner of the data dir (the unix socket)."""
        app = web.Application()
        app.router.add_get("/status", self.handle_status)
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/healthz", self.handle_health)
        return app

    def metrics_app(self) -> web.Application:
        """What the TCP port serves: counts for Prometheus, no titles, URLs or errors."""
        app = web.Application(middlewares=[_local_hosts_only])
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/healthz", self.handle_health)
        return app

    async def start(self) -> None:
        """Listen on the socket, then on the metrics port. A port that cannot be had is a
        ConfigError naming the key, and nothing stays behind (no socket file)."""
        address = bind_address(self.metrics_bind) if self.metrics_port else ""
        try:
            runner = web.AppRunner(self.app(), access_log=None)
            self._runners.append(runner)
            await runner.setup()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            old = os.umask(0o177)  # the socket is created 0600
            try:
                await web.UnixSite(runner, str(self.socket_path)).start()
            finally:
                os.umask(old)
            os.chmod(self.socket_path, 0o600)
            if self.metrics_port:
                tcp = web.AppRunner(self.metrics_app(), access_log=None)
                self._runners.append(tcp)
                await tcp.setup()
                try:
                    await web.TCPSite(tcp, address, self.metrics_port).start()
                except OSError as exc:
                    raise self._listen_error(address, exc) from None
        except BaseException:
            await self.stop()
            raise

    def _listen_error(self, address: str, exc: OSError) -> ConfigError:
        where = f"[{address}]:{self.metrics_port}" if ":" in address else \
            f"{address}:{self.metrics_port}"
        if exc.errno == errno.EADDRINUSE:
            return ConfigError(f"key 'daemon.metrics_port': {where} is already in use by another "
                               "program; choose a free port, or 0 to turn the metrics listener "
                               "off")
        if exc.errno == errno.EADDRNOTAVAIL:
            return ConfigError(f"key 'daemon.metrics_bind': {address} is not an address of this "
                               "machine; use 127.0.0.1, 0.0.0.0 or one of its interfaces")
        if exc.errno == errno.EACCES:
            return ConfigError(f"key 'daemon.metrics_port': {where}: permission denied (ports "
                               "below 1024 need privileges); choose a port above 1023")
        return ConfigError(f"keys 'daemon.metrics_bind'/'daemon.metrics_port': cannot listen on "
                           f"{where}: {exc.strerror or exc}")

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


async def fetch(data_dir: Path, path: str = "/status", timeout_s: float = 2.0) -> bytes | None:
    """GET from the daemon's socket without blocking the event loop; None when no daemon
    answers. The CLI calls `control_client.get` directly (no event loop, no aiohttp)."""
    return await asyncio.to_thread(control_client.get, data_dir, path, timeout_s)
