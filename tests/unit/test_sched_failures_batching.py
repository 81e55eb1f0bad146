from __future__ import annotations

from ytpiped.scheduling.batching import Candidate, pick, windows
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


def test_batches_only_compatible_chunks_up_to_the_batch_size_in_windows() -> None:
    others = [cand(i) for i in range(1, 6)] + [cand(9, group="de")]
    # a minute of audio is two 30-s windows: three chunks fill a batch of 6 (or 7) windows
    for size in (6, 7):
        batch = pick(cand(0), others, max_windows=size, max_audio_s=10_000)
        assert [c.id for c in batch] == ["c0", "c1", "c2"]
    assert all(c.group == "en" for c in batch)
    # a chunk that does not fit is passed over for a shorter one that does
    batch = pick(cand(0, 90.0), [cand(1, 100.0), cand(2, 20.0)], 5, 10_000)
    assert [c.id for c in batch] == ["c0", "c2"]


def test_windows_of_a_chunk() -> None:
    assert [windows(s) for s in (0.0, 5.0, 30.0, 30.5, 109.0, 900.0)] == [1, 1, 1, 2, 4, 30]


def test_fair_share_caps_the_chunks() -> None:
    others = [cand(i, 10.0) for i in range(1, 8)]
    assert len(pick(cand(0, 10.0), others, 8, 600.0)) == 8
    assert len(pick(cand(0, 10.0), others, 8, 600.0, max_items=4)) == 4


def test_audio_cap_closes_the_batch_and_longest_go_first() -> None:
    others = [cand(1, 400.0), cand(2, 100.0), cand(3, 300.0)]
    batch = pick(cand(0, 200.0), others, max_windows=100, max_audio_s=600.0)
    assert [c.id for c in batch] == ["c0", "c1"]  # 200 + 400; nothing else fits
    assert sum(c.audio_s for c in batch) <= 600.0


def test_a_long_head_runs_alone() -> None:
    assert pick(cand(0, 900.0), [cand(1, 10.0)], 8, 600.0) == [cand(0, 900.0)]
    assert pick(cand(0, 300.0), [cand(1, 10.0)], 8, 6000.0) == [cand(0, 300.0)]
