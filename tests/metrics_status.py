"""A full status (as the daemon's read_status builds it) for tests of the metrics, the
alert rules and the Grafana dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ytpiped import status
from ytpiped.store import NewVideo, SqliteDB

BREAKER = {"state": "open", "open_state": "open", "kind": "js_challenge", "level": 2,
           "failures_in_row": 5, "probe_at": 5000.0}
#: what the stages publish (their live status) while a daemon runs
LIVE: dict[str, dict[str, Any]] = {
    "download": {"phase": "cooldown", "next_download_at": 4000.0, "rate_per_hour": 12.5,
                 "buffer_videos": 3, "buffer_bytes": 12_000_000, "cooldown_until": 4600.0,
                 "cooldown_kind": "bot_check", "breaker": BREAKER, "ytdlp_version": "2026.10.26",
                 "js_runtime": {"name": "deno", "version": "2.5.0", "ok": True}},
    "transcribe": {"gpu_slots": 2, "cpu_slots": 1, "busy_fraction_gpu": 0.875,
                   "busy_fraction_cpu": 0.25, "rate_audio_s_per_s": 40.0,
                   "waiting_chunks": 4},
    "mine": {"workers": 3, "in_flight": 2, "rate_windows_per_min": 7.5,
             "tokens_per_s": 51.0, "llm": "cooldown", "cooldown_kind": "llm_unavailable",
             "cooldown_until": 4700.0},
    "evaluate": {"llm": "ok", "cooldown_kind": None, "cooldown_until": None},
}


def full_status() -> dict[str, Any]:
    """A status as read_status builds it: counts from a database, live stage data."""
    store = SqliteDB(Path(":memory:"), now=0)
    try:
        store.add_videos([NewVideo(f"metricvid{i:02d}", "u", "video") for i in range(4)], now=0)
        for key, value in LIVE.items():
            store.set_state(f"stage:{key}", value, 1.0)
        st = status.build(store, 3600.0, daemon_pid=42)
    finally:
        store.close()
    st["alerts"] = ["bot check: refresh cookies", "Ollama is unreachable"]
    st["eta_seconds"] = 7200.0
    st["devices"] = {"cpu_percent": 10.0, "ram_percent": 50.0,
                     "gpus": [{"index": 0, "name": "RTX 4090", "utilization_pct": 93.0,
                               "memory_used_mb": 1024, "memory_total_mb": 24576}]}
    return st
