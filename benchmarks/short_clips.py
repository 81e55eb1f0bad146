"""Many short clips through the real dispatcher and worker processes: does batching
chunks of different videos into one forward pass pay on the CPU? (Issue 21, item 4.)

The workload is CLIPS clips of 10–40 s (the committed speech clips, joined and cut to a
length drawn per clip, written as WAV), each its own video, all waiting at once, as a
channel of shorts or a folder of voice notes would be. Each configuration runs the same
clips with tiny.en (int8) on the slots the daemon would start here (one per core, one
thread each) and on a single slot with every core's threads; unbatched (each chunk its
own `transcribe`) against batched (the dispatcher gives a slot up to `batch_size` 30-s
windows of waiting chunks as one `BatchedInferencePipeline` pass). Configurations are
interleaved over `--repeat` rounds; the median is reported.

    python -m benchmarks.short_clips [--clips 30] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import wave
from pathlib import Path

import numpy as np

from benchmarks.transcribe_cpu import MEDIA, run
from ytpiped.audio.decode import RATE, decode
from ytpiped.engines.base import ChunkJob

CLIPS = ("memory.wav", "solar.webm", "coffee.m4a", "ocean.mp3", "long.opus")


def build(folder: Path, count: int) -> list[ChunkJob]:
    speech = np.concatenate([decode(MEDIA / c) for c in CLIPS])
    rng = np.random.default_rng(21)
    jobs = []
    for i in range(count):
        length = int(rng.uniform(10, 40) * RATE)
        start = int(rng.integers(0, speech.size - length))
        path = folder / f"clip{i:02d}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes((np.clip(speech[start:start + length], -1, 1) * 32767)
                          .astype("<i2").tobytes())
        jobs.append(ChunkJob(f"clip{i:02d}", 0, str(path), 0.0, length / RATE))
    return jobs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    configs = {f"{cores} slots x 1 thread": (cores, 1, 1),
               f"{cores} slots x 1 thread, batched 8": (cores, 1, 8),
               f"1 slot x {cores} threads": (1, cores, 1),
               f"1 slot x {cores} threads, batched 8": (1, cores, 8)}
    speeds: dict[str, list[float]] = {k: [] for k in configs}
    with tempfile.TemporaryDirectory(prefix="ytpiped-clips-") as tmp:
        jobs = build(Path(tmp), args.clips)
        audio_s = sum(j.audio_s for j in jobs)
        for rep in range(args.repeat):
            names = list(configs)
            names = names[rep % len(names):] + names[:rep % len(names)]
            for name in names:
                slots, threads, batch = configs[name]
                audio, wall = asyncio.run(run(slots, threads, batch, jobs))
                speeds[name].append(audio / wall)
                print(f"run {rep + 1}: {name:<32} {audio / wall:6.2f}x real time", flush=True)
    median = {k: round(statistics.median(v), 2) for k, v in speeds.items()}
    names = list(configs)
    result = {"benchmark": "short_clips", "clips": args.clips, "audio_s": round(audio_s, 1),
              "cores": cores, "model": "tiny.en int8", "repeat": args.repeat,
              "audio_s_per_s": median,
              "batched_vs_unbatched": {
                  "daemon slots": round(median[names[1]] / median[names[0]], 3),
                  "one slot": round(median[names[3]] / median[names[2]], 3)}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
