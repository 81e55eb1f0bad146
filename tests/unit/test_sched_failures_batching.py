from __future__ import annotations

from ytpiped.scheduling.batching import BatchItem, ready_batches, split_failed
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


def item(i: int, audio: float = 60.0, lang: str = "en", at: float = 0.0) -> BatchItem:
    return BatchItem(f"c{i}", audio, "tiny", lang, "int8", at)


def test_groups_only_compatible_items_up_to_batch_size() -> None:
    pending = [item(i) for i in range(5)] + [item(9, lang="de")]
    batches, waiting = ready_batches(pending, now=0.0, batch_size=2, timeout_s=10,
                                     max_audio_s=10_000)
    assert [[i.id for i in b.items] for b in batches] == [["c0", "c1"], ["c2", "c3"]]
    assert [i.id for i in waiting] == ["c4", "c9"]  # not full, not expired yet
    batches, waiting = ready_batches(waiting, now=11.0, batch_size=2, timeout_s=10,
                                     max_audio_s=10_000)
    assert sorted(b.group[1] for b in batches) == ["de", "en"] and waiting == []


def test_audio_cap_closes_batches() -> None:
    pending = [item(i, audio=400.0) for i in range(3)]
    batches, _ = ready_batches(pending, now=100.0, batch_size=8, timeout_s=10,
                               max_audio_s=900.0)
    assert [len(b.items) for b in batches] == [2, 1]
    assert all(b.audio_s <= 900 for b in batches)


def test_failed_batch_splits_into_singles() -> None:
    batches, _ = ready_batches([item(i) for i in range(3)], 0.0, 3, 10, 1e9)
    singles = split_failed(batches[0])
    assert [[i.id for i in b.items] for b in singles] == [["c0"], ["c1"], ["c2"]]
