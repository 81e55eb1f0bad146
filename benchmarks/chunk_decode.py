"""Decode work per transcription chunk against the chunk's position in the file.

A synthetic episode (tone and noise, 44.1 kHz stereo AAC in .m4a, as YouTube delivers it)
is written to a temp dir, then every chunk of it is read with the real
`ytpiped.engines.span.read_span` — what a Whisper worker does for each chunk — in 900-s
and 30-s chunks, and compared with one full decode (`ytpiped.audio.decode.decode`).
CPU time (process time) of this process, so other load on the machine does not count.
If decoding started at the beginning of the file for every chunk, the last chunk would
cost about one full decode and the sum of all chunks N/2 full decodes; seeking to the
chunk keeps last/first near 1 and the sum near one full decode. A middle chunk is also
compared sample by sample with the same span of the full decode.

    python -m benchmarks.chunk_decode [--minutes 60]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np

from ytpiped.audio.decode import RATE, decode
from ytpiped.engines import span
from ytpiped.engines.span import read_span

SOURCE_RATE = 44_100
AAC_FRAME = 1024  # samples per AAC packet
UNIT = 2583 * AAC_FRAME  # ~60 s encoded once, repeated (whole packets: no drift)
CHUNK_SIZES = ((900.0, 2), (30.0, 5))  # (chunk seconds, timings of first/middle/last)


def write_episode(path: Path, minutes: int) -> None:
    """About `minutes` of AAC: one encoded minute of a wobbling tone in noise, its packets
    repeated with shifted timestamps (encoding an hour would take minutes of CPU)."""
    rng = np.random.default_rng(7)
    packets: list[tuple[bytes, int, int, int, Fraction]] = []
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=SOURCE_RATE)
        stream.layout = "stereo"
        stream.bit_rate = 128_000

        def keep(encoded: list[Any]) -> None:
            for p in encoded:
                assert p.pts is not None and p.dts is not None and p.time_base is not None
                packets.append((bytes(p), p.pts, p.dts, p.duration or 0, p.time_base))

        step = 100 * AAC_FRAME
        for t0 in range(0, UNIT, step):
            n = min(step, UNIT - t0)
            t = (t0 + np.arange(n)) / SOURCE_RATE
            x = (0.2 * np.sin(2 * np.pi * (220 + 30 * np.sin(t / 7)) * t)
                 * (0.5 + 0.5 * np.sin(3 * t)) + 0.05 * rng.standard_normal(n))
            frame = av.AudioFrame.from_ndarray(np.tile(x.astype(np.float32), (2, 1)),
                                               format="fltp", layout="stereo")
            frame.sample_rate = SOURCE_RATE
            frame.pts = t0
            keep(stream.encode(frame))
        keep(stream.encode(None))
        for r in range(math.ceil(minutes * 60 * SOURCE_RATE / UNIT)):
            shift = r * UNIT
            for data, pts, dts, duration, time_base in packets:
                if r and pts < 0:
                    continue  # the encoder's priming packet: only at the very start
                p = av.Packet(data)
                p.stream = stream
                p.time_base = time_base
                p.pts, p.dts, p.duration = pts + shift, dts + shift, duration
                out.mux(p)


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.process_time()
    result = fn()
    return time.process_time() - t0, result


def best(fn: Callable[[], Any], repeat: int) -> float:
    return min((cpu(fn)[0] for _ in range(repeat)), default=float("inf"))


def lag_and_snr(got: np.ndarray, ref: np.ndarray, probe: int = 8_000) -> tuple[float, float]:
    """Offset (16-kHz samples, to a fraction) of `got` against `ref` at their middle, and
    the signal-to-difference ratio in dB once the first 50 ms are left out. The two are
    aligned but not equal: AAC fills noisy bands with noise from the decoder's random
    state (perceptual noise substitution), which a seek resets, and a seeked read's fresh
    resampler starts at another phase (under half a sample)."""
    mid, reach = got.size // 2, 400
    a = got[mid: mid + probe]
    scores = [float(np.dot(a, ref[mid + k: mid + k + probe])) for k in range(-reach, reach + 1)]
    k = int(np.argmax(scores))
    lag: float = k - reach
    if 0 < k < len(scores) - 1:  # the peak of the parabola through three scores
        left, mid_score, right = scores[k - 1], scores[k], scores[k + 1]
        denom = left - 2 * mid_score + right
        lag += 0.5 * (left - right) / denom if denom else 0.0
    skip = RATE // 20
    n = min(got.size, ref.size) - skip
    diff = got[skip: skip + n] - ref[skip: skip + n]
    power = float(np.sum(np.square(ref[skip: skip + n])))
    return lag, 10 * float(np.log10(power / max(float(np.sum(np.square(diff))), 1e-20)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=60, help="length of the synthetic episode")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ytpiped-bench-") as tmp:
        path = Path(tmp) / "episode.m4a"
        write_episode(path, args.minutes)
        full_s, full = cpu(partial(decode, path))
        duration = full.size / RATE
        result: dict[str, Any] = {"audio_s": round(duration), "codec": "aac 44.1 kHz stereo",
                                  "full_decode_cpu_s": round(full_s, 2)}
        print(f"{args.minutes}-min AAC episode; one full decode: {full_s:.2f} s CPU")
        print(f"{'chunk':>7}{'chunks':>8}{'first s':>9}{'middle s':>10}{'last s':>8}"
              f"{'last/first':>12}{'sum/full':>10}")
        for size, repeat in CHUNK_SIZES:
            bounds = [(float(a), min(a + size, duration))
                      for a in np.arange(0.0, duration, size)]
            times = [cpu(partial(read_span, path, a, b))[0] for a, b in bounds]
            # whole chunks only (the file's last chunk may be short), best of `repeat`
            whole = [k for k, (a, b) in enumerate(bounds) if b - a >= size]
            first, middle, last = (
                min(times[k], best(partial(read_span, path, *bounds[k]), repeat - 1))
                for k in (whole[0], whole[len(whole) // 2], whole[-1]))
            key = f"chunk_{int(size)}s"
            result[key] = {"chunks": len(bounds), "first_cpu_s": round(first, 3),
                           "middle_cpu_s": round(middle, 3), "last_cpu_s": round(last, 3),
                           "last_over_first": round(last / first, 2),
                           # both seeked (a chunk at 0 s is read without a seek)
                           "last_over_middle": round(last / middle, 2),
                           "sum_over_full_decode": round(sum(times) / full_s, 2)}
            print(f"{int(size):>6}s{len(bounds):>8}{first:>9.3f}{middle:>10.3f}{last:>8.3f}"
                  f"{last / first:>12.2f}{sum(times) / full_s:>10.2f}")
        # the old way (decode from the start of the file up to the chunk), for contrast
        a = 900.0 * (int(duration // 900) - 1)
        old_last = best(lambda: span._from_start(path, round(a * RATE), round((a + 900) * RATE)), 1)
        old_first = min(result["chunk_900s"]["first_cpu_s"],
                        best(lambda: span._from_start(path, 0, round(900 * RATE)), 1))
        result["from_start_900s_last_over_first"] = round(old_last / old_first, 2)
        print(f"decoding from the start instead: last/first 900-s chunk "
              f"{old_last / old_first:.2f} (last chunk from {a:.0f} s)")
        mid = round(duration / 2) + 0.37  # not on a packet boundary
        got = read_span(path, mid, mid + 30.0)
        lag, snr = lag_and_snr(got, full[round(mid * RATE): round((mid + 30.0) * RATE)])
        result["seeked_span_vs_full_decode"] = {"lag_samples": round(lag, 2),
                                                "snr_db": round(snr, 1)}
        print(f"30-s span at {mid:.0f} s vs the same span of the full decode: offset {lag:.2f} "
              f"samples, signal/difference {snr:.1f} dB")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
