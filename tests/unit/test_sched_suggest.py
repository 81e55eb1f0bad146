from __future__ import annotations

from ytpiped import config
from ytpiped.scheduling.capacity import Capacity
from ytpiped.scheduling.suggest import Usage, suggest

GB = 1024**3
CAP = Capacity(gpu_slots=(1,), cpu_slots=2, cpu_threads_per_slot=2, model_vram_gb=2.5,
               reasons=())


def usage(**kw: float) -> Usage:
    base = {"busy_gpu": 0.95, "busy_cpu": 0.95, "job_waited": 0.0, "slot_idle_no_work": 0.0,
            "speed_gpu": 50.0, "speed_cpu": 4.0, "avg_cpu_job_s": 40.0,
            "ram_free_bytes": 16 * GB, "cores": 8}
    base.update(kw)
    return Usage(**base)  # type: ignore[arg-type]


def test_quiet_when_all_is_well() -> None:
    assert suggest(usage(), CAP, config.TranscribeConfig()) == []


def test_more_cpu_slots_with_estimated_saving() -> None:
    (s,) = suggest(usage(job_waited=0.6), CAP, config.TranscribeConfig())
    assert s.text == "transcribe.cpu_slots 2 → 3"
    assert "40 s on average" in s.reason
    assert s.effect == "saves ~6% of the remaining time"  # 4 / (50 + 8 + 4) = 6.5 %


def test_idle_slots_point_at_the_download_pace() -> None:
    (s,) = suggest(usage(slot_idle_no_work=0.4), CAP, config.TranscribeConfig())
    assert "delay_steady_s" in s.text and "40%" in s.reason


def test_benefit_policy_with_long_chunks_suggests_ect() -> None:
    cfg = config.TranscribeConfig(policy="benefit", max_chunk_s=900, max_cpu_time_s=60)
    texts = [s.text for s in suggest(usage(), CAP, cfg)]
    assert 'transcribe.policy = "ect"' in texts
