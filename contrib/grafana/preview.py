"""Draw the Grafana dashboard (contrib/grafana/ytpiped.json) from real data: the picture
in the README.

There is no Grafana here, so this does what Grafana would with the same dashboard file:
it runs the demo pipeline (the local media server, FakeOllama, real yt-dlp and
faster-whisper tiny.en) with `daemon.metrics_port` set, lets a real Prometheus scrape it
every second, evaluates every panel's PromQL through Prometheus' query API, and draws the
panels in the dashboard's grid with Grafana's dark colours (SVG, converted to PNG by
rsvg-convert).

    python contrib/grafana/preview.py [--out contrib/grafana/ytpiped.png] [--videos 24]

Needs the dev install (`make install`), `prometheus` (Debian: apt-get install prometheus)
and `rsvg-convert` (Debian: librsvg2-bin).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from ytpiped.demo import run_cli, write_config
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "ytpiped.json"
SCRAPE_S = 1
RATE_INTERVAL = "15s"
WIDTH = 1500
ROW_PX = 27  # one grid unit of height
GAP = 6
BG, PANEL, BORDER, TEXT, MUTED, GRID = (
    "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9e", "#24292e")
PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9",
           "#705DA0", "#508642", "#CCA300", "#447EBC", "#C15C17"]  # Grafana's classic
NAMED = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "blue": "#5794F2",
         "text": TEXT, "yellow": "#FADE2A"}
FONT = "DejaVu Sans, Inter, Helvetica, Arial, sans-serif"


# ------------------------------------------------------------------ the run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def urls(media: MediaServer, n: int) -> list[str]:
    """Good clips in turn, and the demo's troubles among them."""
    good = ["long.opus", "solar.webm", "ocean.mp3", "coffee.m4a", "memory.wav"]
    out = [media.media_url(good[i % len(good)], copy=i) for i in range(n)]
    out[3] = media.media_url("coffee.m4a", status=429, times=2, retry_after=2)
    out[7] = media.media_url("missing.webm")
    out[11] = media.media_url("broken.m4a")
    out[15] = media.media_url("memory.wav", status=403)
    return out


def wait_ready(url: str, timeout_s: float = 60) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up within {timeout_s:.0f} s")


def start_prometheus(work: Path, metrics_port: int) -> tuple[str, subprocess.Popen[bytes]]:
    """A Prometheus that scrapes 127.0.0.1:metrics_port every second; (URL, process)."""
    port = free_port()
    (work / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s}}\n"
        f"scrape_configs:\n  - job_name: ytpiped\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
    with (work / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/-/ready")
    except BaseException:
        proc.terminate()
        raise
    return url, proc


async def demo_run(work: Path, n: int, metrics_port: int) -> tuple[float, float]:
    """Run the pipeline on n videos with the metrics port open; (start, end) Unix times."""
    data, config = work / "data", work / "ytpiped.toml"
    data.mkdir(parents=True)
    async with MediaServer() as media, FakeOllama(latency_s=0.4, per_token_s=0.002) as llm:
        write_config(config, data, llm.url)
        text = config.read_text().replace(
            "delay_buffer_build_s = [0, 0]", "delay_buffer_build_s = [1, 3]").replace(
            "[daemon]\n", f"[daemon]\nmetrics_port = {metrics_port}\n")
        config.write_text(text)
        (work / "urls.txt").write_text("".join(f"{u}\n" for u in urls(media, n)))
        code, out, err = await run_cli("add", str(work / "urls.txt"), config=config)
        print(out.strip() or err.strip())
        env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
        start = time.time()
        with (work / "daemon.log").open("wb") as log:
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ytpiped", "--config", str(config), "run",
                stdout=log, stderr=asyncio.subprocess.STDOUT, env=env)
            try:
                while daemon.returncode is None:
                    await asyncio.sleep(2)
                    code, out, _ = await run_cli("status", "--json", config=config)
                    if code or not out.strip():
                        continue
                    by_state = json.loads(out)["videos"]["by_state"]
                    print(f"  {time.time() - start:5.0f} s  " + ", ".join(
                        f"{s} {k}" for s, k in by_state.items() if k), flush=True)
                    if by_state["done"] + by_state["failed"] == n:
                        break
                await asyncio.sleep(20)  # the rates fall back to zero on the graphs
            finally:
                end = time.time()  # the last scrape of a live daemon is at most 1 s older
                if daemon.returncode is None:
                    daemon.send_signal(signal.SIGTERM)
                await daemon.wait()
    return start - 15, end - SCRAPE_S


# ------------------------------------------------------------------ the queries


def api(prom: str, path: str, **params: Any) -> list[dict[str, Any]]:
    url = f"{prom}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body["status"] != "success":
        raise SystemExit(f"{url}: {body}")
    return list(body["data"]["result"])


def promql(expr: str) -> str:
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$instance", ".*")


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: {{label}} by the label's value ("" where it has none)."""
    return " ".join(re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""),
                           fmt).split())


def panel_series(prom: str, panel: dict[str, Any], start: float, end: float
                 ) -> list[tuple[str, list[tuple[float, float]]]]:
    step = max(1, round((end - start) / 300))
    series = []
    for target in panel["targets"]:
        for r in api(prom, "query_range", query=promql(target["expr"]), start=start, end=end,
                     step=step):
            points = [(float(t), float(v)) for t, v in r["values"] if math.isfinite(float(v))]
            if points:
                series.append((legend(target.get("legendFormat", ""), r["metric"]), points))
    return series


# ------------------------------------------------------------------ drawing


def fmt(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.0f}%"
    if unit == "bytes":
        for u in ("B", "kB", "MB", "GB", "TB"):
            if abs(value) < 1000 or u == "TB":
                return f"{value:.0f} {u}" if u == "B" else f"{value:.1f} {u}"
            value /= 1000
    if unit == "s":
        if value >= 3600:
            return f"{value / 3600:.1f} h"
        if value >= 60:
            return f"{value / 60:.1f} min"
        return f"{value:.3g} s"
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}K"
    return f"{value:.3g}"


def nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(v))
    return next(m * mag for m in (1, 2, 4, 6, 8, 10) if m * mag >= v)  # quarters stay short


def text(x: float, y: float, s: str, size: int = 12, fill: str = TEXT, anchor: str = "start",
         weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" '
            f'text-anchor="{anchor}" font-weight="{weight}">{escape(s)}</text>')


def draw_timeseries(panel: dict[str, Any], series: list[tuple[str, list[tuple[float, float]]]],
                    x0: float, y0: float, w: float, h: float, start: float, end: float
                    ) -> list[str]:
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit", "short")
    stacked = defaults["custom"]["stacking"]["mode"] == "normal"
    legend_rows = max(1, math.ceil(sum(len(n) * 7 + 28 for n, _ in series) / (w - 20)))
    left, top, right = x0 + 58, y0 + 32, x0 + w - 12
    bottom = y0 + h - 22 - 16 * min(legend_rows, 3)
    out: list[str] = []
    if stacked:
        times = sorted({t for _, pts in series for t, _ in pts})
        acc = dict.fromkeys(times, 0.0)
        stacked_series = []
        for name, pts in series:
            values = dict(pts)
            for t in times:
                acc[t] += values.get(t, 0.0)
            stacked_series.append((name, [(t, acc[t]) for t in times]))
        series = stacked_series
    top_value = max((v for _, pts in series for _, v in pts), default=0.0)
    ymax = defaults.get("max") or nice_max(top_value * 1.05)
    for i in range(5):
        y = bottom - (bottom - top) * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                   f'stroke="{GRID}" stroke-width="1"/>')
        out.append(text(left - 6, y + 4, fmt(ymax * i / 4, unit), 10, MUTED, "end"))
    for i in range(6):
        t = start + (end - start) * i / 5
        x = left + (right - left) * i / 5
        out.append(text(x, bottom + 14, dt.datetime.fromtimestamp(t).strftime("%H:%M:%S"), 10,
                        MUTED, "start" if i == 0 else "end" if i == 5 else "middle"))

    def xy(t: float, v: float) -> str:
        x = left + (right - left) * (t - start) / (end - start)
        y = bottom - (bottom - top) * min(v, ymax) / ymax
        return f"{x:.1f},{y:.1f}"

    fill = defaults["custom"]["fillOpacity"] / 100
    previous: list[tuple[float, float]] | None = None
    for k, (_, pts) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        line = " ".join(xy(t, v) for t, v in pts)
        if fill:
            base = [xy(t, v) for t, v in reversed(previous)] if stacked and previous else \
                [xy(pts[-1][0], 0), xy(pts[0][0], 0)]
            out.append(f'<polygon points="{line} {" ".join(base)}" fill="{color}" '
                       f'fill-opacity="{fill:.2f}" stroke="none"/>')
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" '
                   f'stroke-width="1.6" stroke-linejoin="round"/>')
        previous = pts
    lx, ly = x0 + 12, bottom + 32
    for k, (name, _) in enumerate(series):
        width = len(name) * 6.6 + 26
        if lx + width > x0 + w - 8:
            lx, ly = x0 + 12, ly + 16
            if ly > y0 + h - 4:
                break
        out.append(f'<rect x="{lx}" y="{ly - 4}" width="12" height="3" '
                   f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        out.append(text(lx + 17, ly, name, 11, TEXT))
        lx += width
    return out


def stat_color(defaults: dict[str, Any], value: float) -> tuple[str, str | None]:
    for mapping in defaults.get("mappings", []):
        hit = mapping["options"].get(str(int(value))) if value == int(value) else None
        if hit:
            return NAMED.get(hit.get("color", "text"), TEXT), hit["text"]
    color = TEXT
    for step in defaults["thresholds"]["steps"]:
        if step["value"] is None or value >= step["value"]:
            color = NAMED.get(step["color"], TEXT)
    return color, None


def draw_stat(panel: dict[str, Any], prom: str, x0: float, y0: float, w: float, h: float,
              start: float, end: float) -> list[str]:
    defaults = panel["fieldConfig"]["defaults"]
    expr = promql(panel["targets"][0]["expr"])
    result = api(prom, "query", query=expr, time=end)
    value = float(result[0]["value"][1]) if result else None
    out: list[str] = []
    if value is None or not math.isfinite(value):
        out.append(text(x0 + w / 2, y0 + h / 2 + 14, "—", 30, MUTED, "middle"))
        return out
    color, mapped = stat_color(defaults, value)
    shown = mapped or fmt(value, defaults.get("unit", "short"))
    spark = panel_series(prom, panel, start, end)
    if spark:
        pts = spark[0][1]
        top = max(v for _, v in pts) or 1.0
        line = " ".join(f"{x0 + 4 + (w - 8) * (t - start) / (end - start):.1f},"
                        f"{y0 + h - 6 - (h * 0.45) * v / top:.1f}" for t, v in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" '
                   f'stroke-opacity="0.35" stroke-width="1.5"/>')
    out.append(text(x0 + w / 2, y0 + h / 2 + 16, shown, 32, color, "middle", "bold"))
    return out


def render(dash: dict[str, Any], prom: str, start: float, end: float) -> str:
    col = (WIDTH - GAP) / 24
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    header = 44
    height = header + bottom * ROW_PX + GAP
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="{FONT}">', f'<rect width="100%" height="100%" fill="{BG}"/>',
           text(GAP + 6, 28, f"{dash['title']}  ·  instance: all  ·  "
                f"{dt.datetime.fromtimestamp(start):%Y-%m-%d %H:%M:%S} to "
                f"{dt.datetime.fromtimestamp(end):%H:%M:%S}", 16, TEXT, weight="bold")]
    for panel in dash["panels"]:
        g = panel["gridPos"]
        x, y = GAP + g["x"] * col, header + g["y"] * ROW_PX
        w, h = g["w"] * col - GAP, g["h"] * ROW_PX - GAP
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="3" '
                   f'fill="{PANEL}" stroke="{BORDER}"/>')
        out.append(text(x + 10, y + 19, panel["title"], 13, TEXT, weight="bold"))
        if panel["type"] == "stat":
            out += draw_stat(panel, prom, x, y, w, h, start, end)
        else:
            out += draw_timeseries(panel, panel_series(prom, panel, start, end), x, y, w, h,
                                   start, end)
    out.append("</svg>")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(HERE / "ytpiped.png"))
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    for tool in ("prometheus", "rsvg-convert"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (see this script's docstring)",
                  file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="ytpiped-preview-"))
    metrics_port = free_port()
    prom, prom_proc = start_prometheus(work, metrics_port)
    try:
        start, end = asyncio.run(demo_run(work, max(16, args.videos), metrics_port))
        svg = render(json.loads(DASHBOARD.read_text()), prom, start, end)
        (work / "dashboard.svg").write_text(svg)
        subprocess.run(["rsvg-convert", "-o", args.out, str(work / "dashboard.svg")],
                       check=True)
        if shutil.which("pngquant"):  # a palette PNG: a third of the size
            subprocess.run(["pngquant", "--force", "--speed", "1", "--output", args.out,
                            args.out], check=True)
        print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    finally:
        prom_proc.terminate()
        prom_proc.wait(30)
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
