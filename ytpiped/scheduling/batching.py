"""Which waiting chunks run together on one slot as one batched forward pass
(origins/5-intelligent-batching.md). Pure.

When a slot that batches is given a chunk, compatible chunks of other videos (same
language and options, so the same group; the model is the slot's) go with it, longest
first, while the batch holds at most `max_items` chunks and `max_audio_s` of audio. A slot
never waits for a batch to fill: work is only ever batched when it is already waiting,
so batching costs no latency (the original's timeout is not needed). When the batched
pass fails, the worker runs the chunks one at a time, so one bad chunk never fails the
others (`engines.whisper.run_jobs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    id: str
    audio_s: float
    group: str  # language + options: only equal groups batch


def pick(head: Candidate, others: Sequence[Candidate], max_items: int, max_audio_s: float
         ) -> list[Candidate]:
    """`head` and the compatible others that fit with it, in the order they run."""
    batch, audio = [head], head.audio_s
    for c in sorted(others, key=lambda c: -c.audio_s):
        if len(batch) >= max_items:
            break
        if c.group == head.group and c.id != head.id and audio + c.audio_s <= max_audio_s:
            batch.append(c)
            audio += c.audio_s
    return batch
