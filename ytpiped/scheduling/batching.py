"""Batching of compatible chunks for batched inference (origins/5-intelligent-batching.md).
Pure: the caller passes `now`.

Chunks batch together only when they share model, language and compute type. A batch
closes when it holds `batch_size` items, when adding one would exceed `max_audio_s`, or
when its oldest item has waited `timeout_s`. A failed batch is split into single items,
so one bad item never fails the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BatchItem:
    id: str
    audio_s: float
    model: str
    language: str
    compute_type: str
    queued_at: float

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.model, self.language, self.compute_type)


@dataclass
class Batch:
    group: tuple[str, str, str]
    items: list[BatchItem] = field(default_factory=list)

    @property
    def audio_s(self) -> float:
        return sum(i.audio_s for i in self.items)


def ready_batches(pending: Sequence[BatchItem], now: float, batch_size: int, timeout_s: float,
                  max_audio_s: float) -> tuple[list[Batch], list[BatchItem]]:
    """(batches to run now, items that keep waiting). Items keep their arrival order."""
    groups: dict[tuple[str, str, str], list[BatchItem]] = {}
    for item in pending:
        groups.setdefault(item.group, []).append(item)
    out: list[Batch] = []
    waiting: list[BatchItem] = []
    for group, items in groups.items():
        cur = Batch(group)
        for item in items:
            if cur.items and (len(cur.items) >= batch_size
                              or cur.audio_s + item.audio_s > max_audio_s):
                out.append(cur)
                cur = Batch(group)
            cur.items.append(item)
        full = len(cur.items) >= batch_size or cur.audio_s >= max_audio_s
        expired = bool(cur.items) and now - cur.items[0].queued_at >= timeout_s
        if full or expired:
            out.append(cur)
        else:
            waiting.extend(cur.items)
    return out, sorted(waiting, key=lambda i: i.queued_at)


def split_failed(batch: Batch) -> list[Batch]:
    """A failed batch is retried item by item."""
    return [Batch(batch.group, [item]) for item in batch.items]
