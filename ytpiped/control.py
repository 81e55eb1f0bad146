"""Control API of the running daemon: aiohttp on DATA/ytpiped.sock (mode 0600) and,
when `daemon.metrics_port` is set, on `daemon.metrics_bind`:PORT (default 127.0.0.1).

GET /status   the DESIGN.md §3 JSON plus live data published by the stages (socket only:
              titles, URLs and error messages are for the owner of the data dir)
GET /metrics  Prometheus text format
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
import math
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
from ytpiped.store import Store, StoreNotReady, db_path

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def read_status(data_dir: Path, pid: int | None, live: Mapping[str, Mapping[str, Any]],
                now: float) -> dict[str, Any]:
    """Status from a fresh read-only connection (never blocks the daemon's writer)."""
    try:
        store = Store(db_path(data_dir), readonly=True)
    except StoreNotReady:
        store = Store(Path(":memory:"))
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


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def metrics_text(st: Mapping[str, Any]) -> str:
    """Prometheus exposition format from a status dict."""
    out: list[str] = []

    def metric(name: str, kind: str, help: str, samples: list[tuple[dict[str, object], float]]
               ) -> None:
        out.append(f"# HELP ytpiped_{name} {help}")
        out.append(f"# TYPE ytpiped_{name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            v = float(value)
            shown = "NaN" if math.isnan(v) else repr(v)
            out.append(f"ytpiped_{name}{{{lab}}} {shown}" if lab else f"ytpiped_{name} {shown}")

    metric("up", "gauge", "1 while the daemon answers", [({}, 1.0)])
    metric("videos", "gauge", "videos per state",
           [({"state": s}, n) for s, n in st["videos"]["by_state"].items()])
    metric("failed_videos", "gauge", "failed videos per error kind",
           [({"kind": k}, n) for k, n in st["failures"]["by_kind"].items()])
    metric("retries_total", "counter", "retried attempts per error kind",
           [({"kind": k}, n) for k, n in st["failures"].get("transient_by_kind", {}).items()])
    metric("cooldowns_total", "counter", "cooldowns (429, bot check, LLM down…) per kind",
           [({"kind": k}, n) for k, n in st["failures"].get("cooldowns_by_kind", {}).items()])
    stage_samples: dict[str, list[tuple[dict[str, object], float]]] = {}
    for stage, data in st["stages"].items():
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            stage_samples.setdefault(key, []).append(({"stage": stage}, value))
    for key, samples in sorted(stage_samples.items()):
        metric(f"stage_{key}", "gauge", f"per-stage {key.replace('_', ' ')}", samples)
    dl = st["stages"].get("download") or {}
    breaker, js = dl.get("breaker") or {}, dl.get("js_runtime") or {}
    metric("download_info", "gauge", "yt-dlp version and the JavaScript runtime it uses",
           [({"ytdlp_version": dl.get("ytdlp_version") or "", "js_runtime": js.get("name") or "",
              "js_runtime_version": js.get("version") or "",
              "js_runtime_ok": str(bool(js.get("ok"))).lower()}, 1.0)])
    metric("download_breaker_open", "gauge", "1 while the download circuit breaker (or "
           "`ytpiped pause download`) holds downloads",
           [({}, 0.0 if breaker.get("state", "closed") == "closed" else 1.0)])
    metric("download_breaker_failures_in_row", "gauge", "downloads of different videos that "
           "failed in a row for a reason not their own",
           [({}, float(breaker.get("failures_in_row") or 0))])
    metric("download_breaker_level", "gauge", "failed probes since the breaker opened",
           [({}, float(breaker.get("level") or 0))])
    dev = st.get("devices") or {}
    if dev:
        metric("cpu_percent", "gauge", "CPU utilisation", [({}, dev["cpu_percent"])])
        metric("gpu_utilization_percent", "gauge", "GPU utilisation (NVML)",
               [({"gpu": g["index"]}, g["utilization_pct"] or 0.0) for g in dev["gpus"]])
    eta = st.get("eta_seconds")
    metric("eta_seconds", "gauge", "estimated seconds until every video is done or failed",
           [({}, float("nan") if eta is None else eta)])
    return "\n".join(out) + "\n"


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
                 metrics_port: int = 0, metrics_bind: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.live = live
        self.metrics_port = metrics_port
        self.metrics_bind = metrics_bind
        self.socket_path = data_dir / SOCKET_NAME
        self._runners: list[web.AppRunner] = []
        self.requests = 0

    async def _status(self) -> dict[str, Any]:
        live = {k: dict(v) for k, v in self.live.items()}
        return await asyncio.to_thread(read_status, self.data_dir, os.getpid(), live,
                                       time.time())

    async def handle_status(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(await self._status(), dumps=json.dumps)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(text=metrics_text(await self._status()),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

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
