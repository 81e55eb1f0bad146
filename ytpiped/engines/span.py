"""Audio for one chunk, decoded from where it starts, and its cut into Whisper windows.

`read_span` seeks the container to just before the chunk and decodes only the chunk, so
the decode work of a chunk does not grow with its position in the file (decoding from the
start for every chunk made a 60-minute episode cost several full decodes). Where the
container cannot seek or does not time its frames, it falls back to decoding from the
start. Sample positions count from the file's first decoded sample, as a full decode
does (an mp3's encoder delay is not audio). `windows` cuts a chunk into pieces of at
most 30 s at its quietest moments, for the batched pipeline (Whisper's encoder sees 30 s
at a time).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import av
import av.error
import numpy as np
import numpy.typing as npt

from ytpiped.audio.decode import RATE, BadAudio, blocks, resampler, samples
from ytpiped.scheduling.batching import WINDOW_S

PREROLL_S = 1.0  # seek this far before the chunk: keyframes and codec delay
Samples = npt.NDArray[np.float32]


def read_span(path: str | Path, start_s: float, end_s: float) -> Samples:
    """Samples [start_s, end_s) of `path` at 16 kHz mono. Raises BadAudio."""
    lo, hi = max(0, round(start_s * RATE)), round(end_s * RATE)
    if hi <= lo:
        return np.zeros(0, dtype=np.float32)
    if start_s > PREROLL_S:
        with contextlib.suppress(_CannotSeek):
            return _seeked(Path(path), lo, hi)
    return _from_start(path, lo, hi)


class _CannotSeek(Exception):
    pass


def _from_start(path: str | Path, lo: int, hi: int) -> Samples:
    parts, pos = [], 0
    for block in blocks(path):
        a, b = pos, pos + block.size
        if b > lo and a < hi:
            parts.append(block[max(0, lo - a): min(block.size, hi - a)])
        pos = b
        if pos >= hi:
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _seeked(path: Path, lo: int, hi: int) -> Samples:
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError):
        raise _CannotSeek from None  # the slow path names the problem
    with contextlib.closing(container):
        if not container.streams.audio:
            raise _CannotSeek
        stream = container.streams.audio[0]
        if stream.time_base is None:
            raise _CannotSeek
        try:  # the time of the full decode's first sample (mp3: after the encoder delay)
            origin = next(container.decode(stream)).time
            if origin is None:
                raise _CannotSeek
            target = origin + lo / RATE - PREROLL_S
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        except (av.error.FFmpegError, StopIteration):
            raise _CannotSeek from None
        resample = resampler(RATE)
        parts: list[Samples] = []
        pos: int | None = None  # sample index of the next resampled sample

        def take(frames: list[av.AudioFrame]) -> None:
            nonlocal pos
            assert pos is not None
            for out in frames:
                arr = samples(out)
                a, b = pos, pos + arr.size
                if b > lo and a < hi:
                    parts.append(arr[max(0, lo - a): min(arr.size, hi - a)])
                pos = b

        try:
            for frame in container.decode(stream):
                if pos is None:
                    if frame.time is None or frame.time - origin > lo / RATE:
                        raise _CannotSeek  # untimed, or the seek overshot the chunk
                    pos = round((frame.time - origin) * RATE)
                take(resample.resample(frame))
                if pos >= hi:
                    break
        except av.error.FFmpegError as exc:
            if not parts:
                raise BadAudio(f"{path}: cannot decode audio ({type(exc).__name__}: "
                               f"{exc.strerror or exc})") from None
        if pos is None:
            raise _CannotSeek
        if pos < hi:  # the file ended inside the chunk: what the resampler still holds
            take(resample.resample(None))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def windows(audio: Samples, *, max_s: float = WINDOW_S, search_s: float = 5.0,
            frame_s: float = 0.02) -> list[tuple[int, int]]:
    """[start, end) sample ranges of at most `max_s`, covering `audio`; each cut is at the
    quietest `frame_s` frame in the last `search_s` before the limit (a pause, not a word)."""
    n, size, frame = audio.size, int(max_s * RATE), max(1, int(frame_s * RATE))
    out: list[tuple[int, int]] = []
    pos = 0
    while n - pos > size:
        lo, hi = pos + size - int(search_s * RATE), pos + size
        seg = audio[lo:hi]
        k = seg.size // frame
        energy = np.square(seg[: k * frame].reshape(k, frame)).mean(axis=1)
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        out.append((pos, cut))
        pos = cut
    if n > pos or not out:
        out.append((pos, n))
    return out
