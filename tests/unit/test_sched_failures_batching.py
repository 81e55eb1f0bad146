from __future__ import annotations

from ytpiped.scheduling.batching import Candidate, pick
from ytpiped.scheduling.failures import on_failure


def test_failure_rules() -> None:
    d = on_failure("gpu", "crash", 1, 5)
    assert (d.give_up, d.retry_on, d.lower_gpu_slots) == (False, "cpu", False)
    d = on_failure("gpu", "oom", 1, 5)
    assert (d.give_up, d.retry_on, d.lower_gpu_slots) == (False, "any", True)
    d = on_failure("cpu", "timeout", 2, 5)
    assert (d.give_up, d.retry_on) == (False, "cpu")
    assert on_failure("cpu", "crash", 5, 5).give_up
    assert on_failure("gpu", "bad_audio", 1, 5).give_up
    assert on_failure("gpu", "crash", 1, 5, have_cpu=False).retry_on == "gpu"


def cand(i: int, audio: float = 60.0, group: str = "en") -> Candidate:
    return Candidate(f"c{i}", audio, group)


def test_batches_only_compatible_chunks_up_to_the_size() -> None:
    others = [cand(i) for i in range(1, 6)] + [cand(9, group="de")]
    batch = pick(cand(0), others, max_items=3, max_audio_s=10_000)
    assert [c.id for c in batch] == ["c0", "c1", "c2"]
    assert all(c.group == "en" for c in batch)


def test_audio_cap_closes_the_batch_and_longest_go_first() -> None:
    others = [cand(1, 400.0), cand(2, 100.0), cand(3, 300.0)]
    batch = pick(cand(0, 200.0), others, max_items=8, max_audio_s=600.0)
    assert [c.id for c in batch] == ["c0", "c1"]  # 200 + 400; nothing else fits
    assert sum(c.audio_s for c in batch) <= 600.0


def test_a_long_head_runs_alone() -> None:
    assert pick(cand(0, 900.0), [cand(1, 10.0)], 8, 600.0) == [cand(0, 900.0)]
