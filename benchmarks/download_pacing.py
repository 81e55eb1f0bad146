"""Download pacing simulated on virtual time: 7,000 videos against a transcription consumer
that drains the buffer at a fixed rate.

Reports, per configuration: downloads per hour, share of time in each phase, how often
the consumer found the buffer empty (and for how long), and the peak buffered bytes.
Pure simulation with the real `Pacer` (no network, no sleeping).

    python -m benchmarks.download_pacing [--videos 7000]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from dataclasses import dataclass

from ytpiped import config
from ytpiped.download.pacing import Buffer, Pacer

MB = 10**6


@dataclass(frozen=True)
class Case:
    name: str
    consume_s: float  # transcription time per video
    flags: dict[str, object]


CASES = (
    Case("default config, consumer 6 min/video", 360.0, {}),
    Case("default config, fast consumer 90 s/video", 90.0, {}),
    Case("fast consumer, tuned: catch_up 20-40 s, 400/h", 90.0,
         {"download.delay_catch_up_s": [20, 40], "download.max_videos_per_hour": 400}),
)


def simulate(case: Case, videos: int, seed: int) -> dict[str, object]:
    cfg = config.load(flags=case.flags).download
    rng = random.Random(seed)
    pacer = Pacer(cfg, random.Random(seed + 1))
    now, queued = 0.0, videos
    buffered: list[int] = []  # sizes of the waiting videos
    phase_time: dict[str, float] = defaultdict(float)  # seconds per phase
    consumer_free_at, empty_s = 0.0, 0.0
    empty_events, peak_bytes, done = 0, 0, 0
    consumer_waiting_since: float | None = None
    step = 1.0
    while done < videos:
        # the consumer takes the next video when it is free
        if now >= consumer_free_at:
            if buffered:
                buffered.pop(0)
                consumer_free_at = now + case.consume_s * rng.uniform(0.7, 1.3)
                done += 1
                if consumer_waiting_since is not None:
                    empty_s += now - consumer_waiting_since
                    consumer_waiting_since = None
            elif consumer_waiting_since is None and done > 0:
                empty_events += 1
                consumer_waiting_since = now
        buf = Buffer(queued=queued, waiting=len(buffered), bytes=sum(buffered),
                     free_disk=10**12)
        phase, at = pacer.next_at(now, buf)
        if queued and at is not None and at <= now:
            pacer.started(now)
            duration = rng.uniform(5, 30)  # audio-only, worst quality: 5-30 s per episode
            now += duration
            phase_time[phase] += duration
            buffered.append(int(rng.uniform(15, 60) * MB))
            queued -= 1
            pacer.finished(now, ok=True)
            peak_bytes = max(peak_bytes, sum(buffered))
            continue
        phase_time[phase if queued else "idle"] += step
        now += step
    total = sum(phase_time.values())
    downloads_span = total - phase_time["idle"]
    return {"case": case.name, "videos": videos, "hours": round(now / 3600, 1),
            "downloads_per_hour": round(videos / (downloads_span / 3600), 1),
            "phase_share": {k: round(v / total, 3) for k, v in sorted(phase_time.items())},
            "buffer_empty_events": empty_events,
            "buffer_empty_hours": round(empty_s / 3600, 2),
            "peak_buffer_mb": round(peak_bytes / MB)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=7000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    results = [simulate(c, args.videos, args.seed) for c in CASES]
    for r in results:
        share = ", ".join(f"{k} {v:.0%}" for k, v in r["phase_share"].items())  # type: ignore[attr-defined]
        print(f"{r['case']}\n  {r['videos']} videos in {r['hours']} h, "
              f"{r['downloads_per_hour']} downloads/h; buffer empty {r['buffer_empty_events']}x "
              f"({r['buffer_empty_hours']} h); peak buffer {r['peak_buffer_mb']} MB\n"
              f"  phases: {share}")
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
