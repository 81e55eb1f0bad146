from __future__ import annotations

import pytest

from ytpiped.scheduling.policy import Job, Rules, Slot, assign

SPEED = {"gpu": 50.0, "cpu": 4.0}


def predict(kind: str, audio: float) -> float:
    return audio / SPEED[kind]


def jobs(*lengths: float) -> list[Job]:
    return [Job(f"j{i}", a) for i, a in enumerate(lengths)]


FREE = [Slot("g0", "gpu"), Slot("c0", "cpu"), Slot("c1", "cpu")]


def test_gpu_only_and_round_robin() -> None:
    q = jobs(100, 200, 300)
    assert [(a.job.id, a.slot_id) for a in assign("gpu_only", q, FREE, predict, 0, 0)] == \
        [("j0", "g0")]
    assert [(a.job.id, a.slot_id) for a in assign("round_robin", q, FREE, predict, 0, 0)] == \
        [("j0", "g0"), ("j1", "c0"), ("j2", "c1")]


def test_benefit_fills_gpu_with_most_benefit_then_short_jobs_to_cpu() -> None:
    q = jobs(100, 900, 600)
    out = assign("benefit", q, FREE, predict, 0.0, 0.0, Rules(max_cpu_time_s=300))
    # biggest benefit (longest) to the GPU; the next (600 s -> 150 s on CPU) fits the limit
    assert [(a.job.id, a.slot_id) for a in out] == [("j1", "g0"), ("j2", "c0"), ("j0", "c1")]


def test_benefit_waits_when_too_long_for_cpu() -> None:
    q = jobs(2000, 100)
    out = assign("benefit", q, FREE, predict, 0.0, 0.0, Rules(max_cpu_time_s=300))
    assert [(a.job.id, a.slot_id) for a in out] == [("j0", "g0"), ("j1", "c0")]
    busy_gpu = [Slot("g0", "gpu", busy_until=50.0), *FREE[1:]]
    # 2000 s would take 500 s on a CPU: over the limit, and the original rule stops there
    assert assign("benefit", jobs(2000, 100), busy_gpu, predict, 0.0, 0.0,
                  Rules(max_cpu_time_s=300)) == []


def test_benefit_endgame_rule() -> None:
    busy_gpu = [Slot("g0", "gpu", busy_until=50.0), *FREE[1:]]
    assert assign("benefit", jobs(100), busy_gpu, predict, 0.85, 0.0, Rules()) == []
    assert len(assign("benefit", jobs(100), busy_gpu, predict, 0.5, 0.0, Rules())) == 1


def test_ect_keeps_long_jobs_for_a_busy_gpu_and_feeds_cpus_short_ones() -> None:
    busy_gpu = [Slot("g0", "gpu", busy_until=20.0), *FREE[1:]]
    out = assign("ect", jobs(900, 40), busy_gpu, predict, 0.0, 0.0)
    # 900 s: GPU done at 20 + 18 = 38 s vs CPU 225 s -> waits for the GPU;
    # 40 s: CPU done at 10 s vs GPU after the 900 s job -> CPU now
    assert [(a.job.id, a.slot_id) for a in out] == [("j1", "c0")]


def test_ect_longest_first_to_free_gpu() -> None:
    out = assign("ect", jobs(100, 900, 300), FREE, predict, 0.0, 0.0)
    assert out[0].job.id == "j1" and out[0].slot_id == "g0"


def test_ect_never_duplicates_work() -> None:
    # the dispatcher runs every assignment as a job of its own: a policy that handed the
    # same job to two slots would transcribe it twice
    slots = [Slot("g0", "gpu"), Slot("c0", "cpu", busy_until=500.0)]
    assert assign("ect", [], slots, predict, 1.0, 100.0) == []
    out = assign("ect", jobs(100, 200), [Slot("g0", "gpu"), Slot("g1", "gpu")], predict, 0, 0)
    assert sorted(a.job.id for a in out) == ["j0", "j1"]


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        assign("fastest", jobs(1), FREE, predict, 0, 0)
