"""Prometheus metrics of the daemon, with `prometheus_client` and a registry of its own.

Two sources:

- Counted in this process, by the code that does the work, through the functions below:
  stage outcomes and durations, downloads, transcribed chunks, mined windows, LLM requests
  (latency, tokens), notifications. They start at zero with each daemon; Prometheus'
  `rate()` and `increase()` take a restart's counter reset in their stride.
- Read at scrape time from the status (`ytpiped status --json`): videos per state (the
  database), slots, busy ratios, the download phase, breaker and cooldowns, the LLM pause,
  alerts, the ETA, and the free space of the data dir's disk.

Names follow Prometheus' conventions: `ytpiped_` prefix, base units, `_total` counters,
`_seconds`, `_bytes`, `_ratio` and `_timestamp_seconds` (Unix time). Rates are left to
PromQL: nothing here is "per hour".
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ytpiped import __version__
from ytpiped.states import STAGES

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `…_created` series

#: the process-wide registry (the counters below, build info, process and platform)
REGISTRY = CollectorRegistry()
PHASES = ("buffer_build", "steady", "catch_up", "full", "cooldown", "paused", "idle")
#: stage outcomes the worker reports (ytpiped.worker.StageWorker._notify)
OUTCOMES = ("completed", "failed", "retry", "cooldown", "released")
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400,
                     float("inf"))
_LLM_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600, float("inf"))

STAGE_COMPLETED = Counter("ytpiped_stage_completed", "videos that finished a stage",
                          ["stage"], registry=REGISTRY)
STAGE_FAILED = Counter("ytpiped_stage_failed", "videos that failed for good in a stage, by "
                       "error kind", ["stage", "kind"], registry=REGISTRY)
STAGE_RETRIES = Counter("ytpiped_stage_retries", "failed attempts that will be retried, by "
                        "error kind", ["stage", "kind"], registry=REGISTRY)
STAGE_COOLDOWNS = Counter("ytpiped_stage_cooldowns", "runs put back for a cooldown (429, bot "
                          "check, LLM down, disk full), no attempt spent", ["stage", "kind"],
                          registry=REGISTRY)
STAGE_DURATION = Histogram("ytpiped_stage_duration_seconds", "time one video spent in one run "
                           "of a stage, by outcome", ["stage", "outcome"],
                           buckets=_DURATION_BUCKETS, registry=REGISTRY)
DOWNLOADED_BYTES = Counter("ytpiped_download_bytes", "audio bytes downloaded",
                           registry=REGISTRY)
DOWNLOADED_AUDIO = Counter("ytpiped_download_audio_seconds", "seconds of audio downloaded "
                           "(where yt-dlp knew the duration)", registry=REGISTRY)
CHUNKS = Counter("ytpiped_transcribe_chunks", "audio chunks transcribed, by device kind",
                 ["device"], registry=REGISTRY)
CHUNK_AUDIO = Counter("ytpiped_transcribe_audio_seconds", "seconds of audio transcribed, by "
                      "device kind", ["device"], registry=REGISTRY)
WINDOWS = Counter("ytpiped_mine_windows", "transcript windows mined (ok) or given up on "
                  "(failed)", ["result"], registry=REGISTRY)
LLM_REQUESTS = Counter("ytpiped_llm_requests", "LLM requests by model and result (ok or the "
                       "error kind)", ["model", "result"], registry=REGISTRY)
LLM_LATENCY = Histogram("ytpiped_llm_request_duration_seconds", "latency of answered LLM "
                        "requests", ["model"], buckets=_LLM_BUCKETS, registry=REGISTRY)
LLM_TOKENS = Counter("ytpiped_llm_tokens", "tokens the LLM read (prompt) and wrote "
                     "(completion), as the servers counted them (Ollama prompt_eval_count/"
                     "eval_count, OpenAI usage)", ["model", "type"], registry=REGISTRY)
LLM_CLAMPED = Counter("ytpiped_llm_values_clamped", "values in LLM answers outside the "
                      "schema's bounds (a grammar leaves bounds out), by field: numbers "
                      "clamped into their range, lists cut to their most items",
                      ["field"], registry=REGISTRY)
VIDEO_TOKENS = Histogram("ytpiped_mine_video_tokens", "prompt + completion tokens mining one "
                         "video took (summary, windows, repairs)", buckets=(
                             2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
                             1_000_000, 2_000_000), registry=REGISTRY)
NOTIFICATIONS = Counter("ytpiped_notifications", "notifications by event and result (sent, "
                        "failed, rate_limited, dropped)", ["event", "result"],
                        registry=REGISTRY)
BUILD = Info("ytpiped_build", "ytpiped's version and the Python that runs it",
             registry=REGISTRY)
BUILD.info({"version": __version__, "python_version": platform.python_version()})
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# series that progress alerts and dashboards sum exist from the start, at zero
for _stage in STAGES:
    STAGE_COMPLETED.labels(_stage)
for _device in ("gpu", "cpu"):
    CHUNKS.labels(_device)
    CHUNK_AUDIO.labels(_device)
WINDOWS.labels("ok")


def stage_outcome(stage: str, outcome: str, kind: str | None, seconds: float | None) -> None:
    """One run of `stage` ended: completed, failed, retry, cooldown or released."""
    kind = kind or "unknown"
    if outcome == "completed":
        STAGE_COMPLETED.labels(stage).inc()
    elif outcome == "failed":
        STAGE_FAILED.labels(stage, kind).inc()
    elif outcome == "retry":
        STAGE_RETRIES.labels(stage, kind).inc()
    elif outcome == "cooldown":
        STAGE_COOLDOWNS.labels(stage, kind).inc()
    if seconds is not None and outcome in OUTCOMES:
        STAGE_DURATION.labels(stage, outcome).observe(max(0.0, seconds))


def video_downloaded(size_bytes: int | None, audio_s: float | None) -> None:
    if size_bytes:
        DOWNLOADED_BYTES.inc(size_bytes)
    if audio_s:
        DOWNLOADED_AUDIO.inc(audio_s)


def chunk_transcribed(device: str, audio_s: float) -> None:
    """`device`: "cpu", "cuda:0", "gpu" … (counted as cpu or gpu)."""
    kind = "cpu" if device.startswith("cpu") else "gpu"
    CHUNKS.labels(kind).inc()
    CHUNK_AUDIO.labels(kind).inc(max(0.0, audio_s))


def window_mined(ok: bool) -> None:
    WINDOWS.labels("ok" if ok else "failed").inc()


def video_tokens(tokens: int) -> None:
    """One video was mined with `tokens` prompt + completion tokens."""
    VIDEO_TOKENS.observe(max(0, tokens))


def llm_request(model: str, result: str, seconds: float | None = None,
                prompt_tokens: int | None = None, completion_tokens: int | None = None) -> None:
    """One LLM request ended: `result` "ok" or its error kind."""
    LLM_REQUESTS.labels(model, result).inc()
    if result == "ok" and seconds is not None:
        LLM_LATENCY.labels(model).observe(max(0.0, seconds))
    if prompt_tokens:
        LLM_TOKENS.labels(model, "prompt").inc(prompt_tokens)
    if completion_tokens:
        LLM_TOKENS.labels(model, "completion").inc(completion_tokens)


def llm_clamped(field: str, count: int = 1) -> None:
    LLM_CLAMPED.labels(field).inc(count)


def notification(event: str, result: str) -> None:
    NOTIFICATIONS.labels(event, result).inc()


# ------------------------------------------------------------------ read at scrape time


def _gauge(name: str, help: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"ytpiped_{name}", help, labels=list(labels))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class StatusCollector(Collector):
    """Gauges from one status dict (read_status) and the data dir's disk."""

    def __init__(self, st: Mapping[str, Any], data_dir: Path | None = None) -> None:
        self.st = st
        self.data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        st = self.st
        videos = _gauge("videos", "videos per state (the backlog of each stage)", ("state",))
        for state, n in st["videos"]["by_state"].items():
            videos.add_metric([state], n)
        yield videos
        failed = _gauge("failed_videos", "failed videos in the database, by error kind",
                        ("kind",))
        for kind, n in st["failures"]["by_kind"].items():
            failed.add_metric([kind], n)
        yield failed
        alerts = st.get("alerts") or []
        yield GaugeMetricFamily("ytpiped_alerts", "ALERT lines `ytpiped status` shows now",
                                value=len(alerts))
        eta = _num(st.get("eta_seconds"))
        if eta is not None:
            yield GaugeMetricFamily("ytpiped_eta_seconds", "estimated seconds until every "
                                    "video is done or failed", value=eta)
        stages = st.get("stages") or {}
        yield from self._download(stages.get("download") or {})
        yield from self._transcribe(stages.get("transcribe") or {})
        yield from self._llm(stages)
        yield from self._devices(st.get("devices") or {})
        yield from self._disk()
        yield from self._hosts(st.get("hosts") or [])

    def _hosts(self, hosts: list[Mapping[str, Any]]) -> Iterator[Metric]:
        """Hosts sharing a PostgreSQL store (none with SQLite: nothing is exported)."""
        if not hosts:
            return
        beat = _gauge("host_last_heartbeat_timestamp_seconds", "last heartbeat of each host "
                      "sharing the store", ("host",))
        silent = _gauge("host_silent", "1 when a host has not reported for its silence "
                        "limit (5 minutes or more)", ("host",))
        running = _gauge("host_running", "jobs running per host and stage", ("host", "stage"))
        for h in hosts:
            name = str(h["host"])
            beat.add_metric([name], float(h["last_heartbeat"]))
            silent.add_metric([name], 1.0 if h["silent"] else 0.0)
            for stage, s in (h.get("stages") or {}).items():
                running.add_metric([name, str(stage)], float(s.get("running") or 0))
        yield beat
        yield silent
        yield running

    def _download(self, dl: Mapping[str, Any]) -> Iterator[Metric]:
        phase = _gauge("download_phase", "1 for the download stage's current pacing phase",
                       ("phase",))
        current = dl.get("phase") or "idle"
        for p in (*PHASES, *(() if current in PHASES else (current,))):
            phase.add_metric([p], 1.0 if p == current else 0.0)
        yield phase
        for key, name, help in (
                ("next_download_at", "download_next_timestamp_seconds",
                 "when the next download may start"),
                ("cooldown_until", "download_cooldown_until_timestamp_seconds",
                 "end of the running download cooldown")):
            at = _num(dl.get(key))
            if at is not None:
                yield GaugeMetricFamily(f"ytpiped_{name}", help, value=at)
        cooldown = _gauge("download_cooldown", "1 while downloads wait out a cooldown of this "
                          "kind (rate_limited, bot_check, cookies_missing …)", ("kind",))
        kind = dl.get("cooldown_kind")
        if kind:
            cooldown.add_metric([str(kind)], 1.0)
        yield cooldown
        for key, name, help in (("buffer_videos", "download_buffer_videos",
                                 "downloaded videos waiting for transcription"),
                                ("buffer_bytes", "download_buffer_bytes",
                                 "audio bytes waiting for transcription")):
            value = _num(dl.get(key))
            if value is not None:
                yield GaugeMetricFamily(f"ytpiped_{name}", help, value=value)
        breaker = dl.get("breaker") or {}
        yield GaugeMetricFamily(
            "ytpiped_download_breaker_open", "1 while the download circuit breaker (or "
            "`ytpiped pause download`) holds downloads",
            value=0.0 if breaker.get("state", "closed") == "closed" else 1.0)
        yield GaugeMetricFamily(
            "ytpiped_download_breaker_failures_in_row", "downloads of different videos that "
            "failed in a row for a reason not their own",
            value=float(breaker.get("failures_in_row") or 0))
        yield GaugeMetricFamily("ytpiped_download_breaker_level",
                                "failed probes since the breaker opened",
                                value=float(breaker.get("level") or 0))
        probe = _num(breaker.get("probe_at"))
        if probe is not None and breaker.get("state", "closed") != "closed":
            yield GaugeMetricFamily("ytpiped_download_breaker_probe_timestamp_seconds",
                                    "when the open breaker tries one probe download",
                                    value=probe)
        js = dl.get("js_runtime") or {}
        info = _gauge("download_info", "yt-dlp version and the JavaScript runtime it uses",
                      ("ytdlp_version", "js_runtime", "js_runtime_version", "js_runtime_ok"))
        info.add_metric([str(dl.get("ytdlp_version") or ""), str(js.get("name") or ""),
                         str(js.get("version") or ""), str(bool(js.get("ok"))).lower()], 1.0)
        yield info

    def _transcribe(self, tr: Mapping[str, Any]) -> Iterator[Metric]:
        slots = _gauge("slots", "concurrent work slots (transcription per device kind, LLM "
                       "requests of the mine pool)", ("stage", "device"))
        busy = _gauge("transcribe_busy_ratio", "fraction of the slots' time spent "
                      "transcribing since the daemon started", ("device",))
        for device in ("gpu", "cpu"):
            n = _num(tr.get(f"{device}_slots"))
            if n is not None:
                slots.add_metric(["transcribe", device], n)
            ratio = _num(tr.get(f"busy_fraction_{device}"))
            if ratio is not None and n:
                busy.add_metric([device], ratio)
        yield slots
        yield busy
        waiting = _num(tr.get("waiting_chunks"))
        if waiting is not None:
            yield GaugeMetricFamily("ytpiped_transcribe_waiting_chunks",
                                    "chunks waiting for a free slot", value=waiting)

    def _llm(self, stages: Mapping[str, Any]) -> Iterator[Metric]:
        mine = stages.get("mine") or {}
        workers = _num(mine.get("workers"))
        if workers is not None:
            yield GaugeMetricFamily("ytpiped_mine_workers", "concurrent LLM requests the "
                                    "adaptive pool allows now", value=workers)
        in_flight = _num(mine.get("in_flight"))
        if in_flight is not None:
            yield GaugeMetricFamily("ytpiped_mine_requests_in_flight",
                                    "LLM requests of the mine pool running now", value=in_flight)
        paused = _gauge("llm_paused", "1 while mining/evaluation pause because the LLM server "
                        "is down, busy or failing", ("stage", "kind"))
        until = _gauge("llm_pause_until_timestamp_seconds", "end of the running LLM pause",
                       ("stage",))
        for stage in ("mine", "evaluate"):
            data = stages.get(stage) or {}
            if "llm" not in data:
                continue
            on = data.get("llm") == "cooldown"
            paused.add_metric([stage, str(data.get("cooldown_kind") or "")], 1.0 if on else 0.0)
            at = _num(data.get("cooldown_until"))
            if on and at is not None:
                until.add_metric([stage], at)
        yield paused
        yield until

    def _devices(self, dev: Mapping[str, Any]) -> Iterator[Metric]:
        util = _gauge("gpu_utilization_ratio", "GPU utilisation (NVML)", ("gpu", "name"))
        used = _gauge("gpu_memory_used_bytes", "GPU memory in use (NVML)", ("gpu",))
        total = _gauge("gpu_memory_total_bytes", "GPU memory (NVML)", ("gpu",))
        for g in dev.get("gpus") or []:
            index = str(g.get("index"))
            pct = _num(g.get("utilization_pct"))
            if pct is not None:
                util.add_metric([index, str(g.get("name") or "")], pct / 100)
            used.add_metric([index], float(g.get("memory_used_mb") or 0) * 2**20)
            total.add_metric([index], float(g.get("memory_total_mb") or 0) * 2**20)
        yield util
        yield used
        yield total

    def _disk(self) -> Iterator[Metric]:
        if self.data_dir is None:
            return
        try:
            usage = shutil.disk_usage(self.data_dir)
        except OSError:
            return
        yield GaugeMetricFamily("ytpiped_data_dir_free_bytes", "free space on the data dir's "
                                "file system (for this user)", value=usage.free)
        yield GaugeMetricFamily("ytpiped_data_dir_size_bytes",
                                "size of the data dir's file system", value=usage.total)


class _Scrape(Collector):
    """The process registry and one status snapshot, collected together."""

    def __init__(self, st: Mapping[str, Any], data_dir: Path | None) -> None:
        self.parts: tuple[Collector, ...] = (REGISTRY, StatusCollector(st, data_dir))

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


def exposition(st: Mapping[str, Any], data_dir: Path | None = None,
               accept: str = "") -> tuple[bytes, str]:
    """(body, content type) of one scrape: the text format, or OpenMetrics when `accept`
    asks for it (as Prometheus does)."""
    registry = CollectorRegistry()  # per scrape: two scrapes at once never mix
    registry.register(_Scrape(st, data_dir))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
