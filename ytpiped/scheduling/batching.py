"""Which waiting chunks run together on one slot as one batched forward pass
(origins/5-intelligent-batching.md). Pure.

When a slot that batches is given a chunk, compatible chunks of other videos (same
language and options, so the same group; the model is the slot's) go with it, longest
first, while the batch's 30-s windows fill at most the slot's batch size (`max_windows`:
a batched forward pass runs that many windows at once, so more chunks would only queue
behind each other on one slot while another could run them), within `max_audio_s` of
audio and `max_items` chunks (the dispatcher's fair share when other slots are free). A
slot never waits for a batch to fill: work is only ever batched when it is already
waiting, so batching costs no latency (the original's timeout is not needed). When the
batched pass fails, the worker runs the chunks one at a time, so one bad chunk never
fails the others (`engines.whisper.run_jobs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WINDOW_S = 30.0  # Whisper's window (`engines.span.windows` cuts chunks into these)


@dataclass(frozen=True)
class Candidate:
    id: str
    audio_s: float
    group: str  # language + options: only equal groups batch


def windows(audio_s: float) -> int:
    """The 30-s windows a chunk of `audio_s` is decoded in."""
    return max(1, math.ceil(audio_s / WINDOW_S - 1e-9))


def pick(head: Candidate, others: Sequence[Candidate], max_windows: int, max_audio_s: float,
         max_items: int | None = None) -> list[Candidate]:
    """`head` and the compatible others that fit with it, in the order they run."""
    batch, audio, used = [head], head.audio_s, windows(head.audio_s)
    for c in sorted(others, key=lambda c: -c.audio_s):
        if max_items is not None and len(batch) >= max_items:
            break
        if c.group == head.group and c.id != head.id and audio + c.audio_s <= max_audio_s \
                and used + windows(c.audio_s) <= max_windows:
            batch.append(c)
            audio += c.audio_s
            used += windows(c.audio_s)
    return batch
