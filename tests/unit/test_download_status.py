"""yt-dlp's version, the JavaScript runtime and the breaker in `status --json`
(stages.download) and in the Prometheus metrics."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from ytpiped import control, status
from ytpiped.store import SqliteDB

BREAKER = {"state": "open", "kind": "js_challenge", "level": 2, "failures_in_row": 5,
           "probe_at": 5000.0}
JS = {"name": "deno", "path": "/venv/bin/deno", "version": "2.9.8", "ok": True,
      "problem": None}


def test_metrics_show_the_yt_dlp_version_runtime_and_breaker() -> None:
    st = {"videos": {"by_state": {"queued": 8}}, "failures": {"by_kind": {}},
          "stages": {"download": {"phase": "paused", "ytdlp_version": "2026.10.26",
                                  "js_runtime": JS, "breaker": BREAKER}},
          "eta_seconds": None}
    text = control.metrics_text(st)
    assert ('ytpiped_download_info{js_runtime="deno",js_runtime_ok="true",'
            'js_runtime_version="2.9.8",ytdlp_version="2026.10.26"} 1.0') in text
    assert "ytpiped_download_breaker_open 1.0" in text
    assert "ytpiped_download_breaker_failures_in_row 5.0" in text
    assert "ytpiped_download_breaker_level 2.0" in text
    st["stages"]["download"]["breaker"] = {"state": "closed"}
    assert "ytpiped_download_breaker_open 0.0" in control.metrics_text(st)


def test_status_without_a_daemon_keeps_the_breaker_the_last_one_left() -> None:
    store = SqliteDB(Path(":memory:"), now=0)
    try:
        fresh = status.build(store, 10.0, daemon_pid=None)["stages"]["download"]
        assert fresh["breaker"] == {"state": "closed"} and fresh["js_runtime"] is None
        assert fresh["ytdlp_version"] == metadata.version("yt-dlp")
        store.set_state("stage:download", {"phase": "paused", "breaker": BREAKER,
                                           "js_runtime": JS}, 5.0)
        stopped = status.build(store, 10.0, daemon_pid=None)["stages"]["download"]
        assert stopped["breaker"] == BREAKER  # a pause outlives the daemon
        running = status.build(store, 10.0, daemon_pid=42)["stages"]["download"]
        assert running["js_runtime"] == JS and running["phase"] == "paused"
    finally:
        store.close()
