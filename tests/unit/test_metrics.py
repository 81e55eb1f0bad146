"""The Prometheus exposition (ytpiped.metrics): prometheus_client's own parsers read it,
names follow Prometheus' conventions, counters count, gauges come from the status."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics_status import full_status
from ytpiped import control, metrics
from ytpiped.states import STAGES


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, metric: str, **labels: str) -> float | None:
    return samples(text).get((metric, tuple(sorted(labels.items()))))


def test_exposition_parses_and_follows_prometheus_naming(tmp_path: Path) -> None:
    text = control.metrics_text(full_status(), tmp_path)
    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families}
    assert {"ytpiped_videos", "ytpiped_stage_completed", "ytpiped_stage_duration_seconds",
            "ytpiped_llm_tokens", "ytpiped_build_info", "process_resident_memory_bytes",
            "process_cpu_seconds", "ytpiped_data_dir_free_bytes"} <= names
    for family in families:
        assert re.fullmatch(r"(ytpiped|process|python)_[a-z0-9_]+", family.name), family.name
        assert family.documentation, family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == family.name + "_total", sample.name
            if sample.name.endswith(("_seconds", "_bytes", "_ratio")) and \
                    family.type == "gauge" and "_timestamp_" not in sample.name:
                assert sample.value >= 0, sample
            if sample.name.endswith("_ratio"):
                assert 0 <= sample.value <= 1, sample
        # base units only: no minutes, hours, percentages or kilobytes in a name
        assert not re.search(r"(percent|minutes?|hours?|_kb|_mb|_ms)(_|$)", family.name)
    # a rate is PromQL's job: no pre-computed rates or "last hour" counts
    assert not re.search(r"rate_per_hour|completed_last_hour|per_min|per_s\b|tokens_per_s",
                         text)


def test_gauges_from_the_status(tmp_path: Path) -> None:
    text = control.metrics_text(full_status(), tmp_path)
    assert value(text, "ytpiped_videos", state="queued") == 4
    assert value(text, "ytpiped_videos", state="done") == 0
    assert value(text, "ytpiped_alerts") == 2
    assert value(text, "ytpiped_download_phase", phase="cooldown") == 1
    assert value(text, "ytpiped_download_phase", phase="steady") == 0
    assert value(text, "ytpiped_download_next_timestamp_seconds") == 4000
    assert value(text, "ytpiped_download_cooldown_until_timestamp_seconds") == 4600
    assert value(text, "ytpiped_download_cooldown", kind="bot_check") == 1
    assert value(text, "ytpiped_download_buffer_bytes") == 12_000_000
    assert value(text, "ytpiped_download_breaker_open") == 1
    assert value(text, "ytpiped_download_breaker_failures_in_row") == 5
    assert value(text, "ytpiped_download_breaker_probe_timestamp_seconds") == 5000
    assert value(text, "ytpiped_slots", stage="transcribe", device="gpu") == 2
    assert value(text, "ytpiped_transcribe_busy_ratio", device="gpu") == 0.875
    assert value(text, "ytpiped_transcribe_waiting_chunks") == 4
    assert value(text, "ytpiped_mine_workers") == 3
    assert value(text, "ytpiped_llm_paused", stage="mine", kind="llm_unavailable") == 1
    assert value(text, "ytpiped_llm_paused", stage="evaluate", kind="") == 0
    assert value(text, "ytpiped_llm_pause_until_timestamp_seconds", stage="mine") == 4700
    assert value(text, "ytpiped_gpu_utilization_ratio", gpu="0", name="RTX 4090") == 0.93
    assert value(text, "ytpiped_gpu_memory_total_bytes", gpu="0") == 24576 * 2**20
    assert value(text, "ytpiped_download_info", ytdlp_version="2026.10.26", js_runtime="deno",
                 js_runtime_version="2.5.0", js_runtime_ok="true") == 1
    assert value(text, "ytpiped_build_info", version=metrics.__version__,
                 python_version=metrics.platform.python_version()) == 1
    free = value(text, "ytpiped_data_dir_free_bytes")
    size = value(text, "ytpiped_data_dir_size_bytes")
    assert free is not None and size is not None and 0 < free <= size


def test_unknown_values_are_left_out_not_nan() -> None:
    st = {"videos": {"by_state": {"queued": 1}}, "failures": {"by_kind": {'we"ird': 2}},
          "stages": {"download": {"phase": "steady", "rate_per_hour": 4.5,
                                  "next_download_at": None}},
          "eta_seconds": None}
    text = control.metrics_text(st)
    assert 'ytpiped_failed_videos{kind="we\\"ird"} 2.0' in text
    assert value(text, "ytpiped_failed_videos", kind='we"ird') == 2
    assert "NaN" not in text and "ytpiped_eta_seconds " not in text
    assert "ytpiped_download_next_timestamp_seconds " not in text
    assert "ytpiped_data_dir_free_bytes" not in text  # no data dir given
    st["eta_seconds"] = 90.0
    assert value(control.metrics_text(st), "ytpiped_eta_seconds") == 90


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    body, content_type = metrics.exposition(full_status(), accept=accept)
    assert content_type.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    names = {f.name for f in openmetrics_families(text)}
    assert {"ytpiped_videos", "ytpiped_stage_completed"} <= names
    plain, plain_type = metrics.exposition(full_status())
    assert plain_type.startswith("text/plain") and b"# EOF" not in plain


def test_stage_outcomes_count_per_stage_and_kind() -> None:
    reg = metrics.REGISTRY

    def get(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    before = {
        "done": get("ytpiped_stage_completed_total", stage="analyze"),
        "failed": get("ytpiped_stage_failed_total", stage="analyze", kind="bad_audio"),
        "retry": get("ytpiped_stage_retries_total", stage="analyze", kind="network"),
        "cool": get("ytpiped_stage_cooldowns_total", stage="analyze", kind="disk_full"),
        "n": get("ytpiped_stage_duration_seconds_count", stage="analyze", outcome="completed"),
        "sum": get("ytpiped_stage_duration_seconds_sum", stage="analyze", outcome="completed"),
    }
    metrics.stage_outcome("analyze", "completed", None, 12.0)
    metrics.stage_outcome("analyze", "completed", None, 30.0)
    metrics.stage_outcome("analyze", "failed", "bad_audio", 1.0)
    metrics.stage_outcome("analyze", "retry", "network", None)
    metrics.stage_outcome("analyze", "cooldown", "disk_full", 2.0)
    assert get("ytpiped_stage_completed_total", stage="analyze") == before["done"] + 2
    assert get("ytpiped_stage_failed_total", stage="analyze", kind="bad_audio") == \
        before["failed"] + 1
    assert get("ytpiped_stage_retries_total", stage="analyze", kind="network") == \
        before["retry"] + 1
    assert get("ytpiped_stage_cooldowns_total", stage="analyze", kind="disk_full") == \
        before["cool"] + 1
    assert get("ytpiped_stage_duration_seconds_count", stage="analyze",
               outcome="completed") == before["n"] + 2
    assert get("ytpiped_stage_duration_seconds_sum", stage="analyze",
               outcome="completed") == before["sum"] + 42


@pytest.mark.parametrize(("device", "label"), [("cuda:0", "gpu"), ("cpu", "cpu")])
def test_work_counters(device: str, label: str) -> None:
    reg = metrics.REGISTRY

    def get(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    chunks = get("ytpiped_transcribe_chunks_total", device=label)
    audio = get("ytpiped_transcribe_audio_seconds_total", device=label)
    windows = get("ytpiped_mine_windows_total", result="failed")
    tokens = get("ytpiped_llm_tokens_total", model="m", type="completion")
    requests = get("ytpiped_llm_requests_total", model="m", result="llm_timeout")
    latency_n = get("ytpiped_llm_request_duration_seconds_count", model="m")
    dl_bytes = get("ytpiped_download_bytes_total")
    metrics.chunk_transcribed(device, 30.0)
    metrics.window_mined(ok=False)
    metrics.llm_request("m", "ok", 2.0, prompt_tokens=100, completion_tokens=40)
    metrics.llm_request("m", "llm_timeout")
    metrics.video_downloaded(5000, 61.0)
    assert get("ytpiped_transcribe_chunks_total", device=label) == chunks + 1
    assert get("ytpiped_transcribe_audio_seconds_total", device=label) == audio + 30
    assert get("ytpiped_mine_windows_total", result="failed") == windows + 1
    assert get("ytpiped_llm_tokens_total", model="m", type="completion") == tokens + 40
    assert get("ytpiped_llm_requests_total", model="m", result="llm_timeout") == requests + 1
    assert get("ytpiped_llm_request_duration_seconds_count", model="m") == latency_n + 1
    assert get("ytpiped_download_bytes_total") == dl_bytes + 5000


def test_progress_series_exist_from_the_start() -> None:
    """`increase()` over the progress counters needs them before the first video."""
    text = control.metrics_text(full_status())
    for stage in STAGES:
        assert value(text, "ytpiped_stage_completed_total", stage=stage) is not None
    for device in ("gpu", "cpu"):
        assert value(text, "ytpiped_transcribe_chunks_total", device=device) is not None
    assert value(text, "ytpiped_mine_windows_total", result="ok") is not None
