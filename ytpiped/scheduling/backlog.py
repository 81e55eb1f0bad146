"""Progress of the current backlog, for the endgame rule (no new CPU work past
`stop_cpu_at_progress`). Pure.

The original design counts chunks done over all chunks of one batch. A daemon has no such
batch: counted over everything it has ever seen, progress passes 0.8 after a few dozen
chunks and the CPU never gets work again. Here the batch is the backlog: the audio known
to remain (chunks queued and running, the rest of the videos in flight, and videos
analyzed and waiting). Progress is how far the backlog has shrunk from its peak,
1 − remaining / peak, and the peak starts again whenever the backlog runs empty. A daemon
fed steadily keeps using the CPU for days; a backlog that drains stops the CPU near its
end, so the last chunks are not left on slow slots.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backlog:
    peak_s: float = 0.0
    remaining_s: float = 0.0

    def update(self, remaining_s: float) -> float:
        """Record the audio known to remain now; returns the progress (0..1)."""
        self.remaining_s = max(0.0, remaining_s)
        if self.remaining_s <= 0.0:
            self.peak_s = 0.0
        self.peak_s = max(self.peak_s, self.remaining_s)
        return self.progress

    @property
    def progress(self) -> float:
        return 0.0 if self.peak_s <= 0 else 1.0 - self.remaining_s / self.peak_s
