"""What a Whisper worker process does with the jobs it is sent (runs in the child).

- Each chunk's audio is decoded from where the chunk starts (`span.read_span`).
- Unbatched slots (`batch_size = 1`) run faster-whisper's sequential decoder per chunk;
  so does every slot when `condition_on_previous_text` is set (only the sequential
  decoder has the previous window's text).
- Batched slots cut every chunk of the batch into windows of at most 30 s at its quiet
  moments and run all windows of all chunks through `BatchedInferencePipeline` as one
  pass (`clip_timestamps`), with Whisper's own timestamps kept; VAD only when
  `vad_filter` is set. The batched decoder samples at the first temperature only, so a
  window whose text fails Whisper's own checks (compression ratio > 2.4, average log
  probability < −1) is decoded again alone with the temperature fallback — what the
  sequential decoder does for itself. The options are therefore the same on every path.
- A failed batched pass falls back to one chunk at a time, so one bad chunk never fails
  the others; bad audio fails only its own chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ytpiped.audio.decode import RATE, BadAudio
from ytpiped.engines.base import ChunkJob, DecodeOptions
from ytpiped.engines.span import Samples, read_span, windows

COMPRESSION_LIMIT = 2.4
LOGPROB_LIMIT = -1.0
DETECT_S = 30.0
MAX_PASSES = 3  # batched passes over the unfinished ends of windows
TAIL_S = 1.0  # an unfinished end shorter than this is not decoded again
FRAMES_PER_S = 100  # Whisper's feature frames per second (`Segment.seek` counts them)

Reply = tuple[str, Any]  # ("ok", payload) | ("bad_audio", msg) | ("error", msg)


@dataclass
class Loaded:
    model: Any  # faster_whisper.WhisperModel
    pipeline: Any | None  # BatchedInferencePipeline when batch_size > 1
    batch_size: int
    options: DecodeOptions


def _segment(s: Any, offset: float, words: bool) -> dict[str, Any]:
    out = {"start": round(offset + s.start, 3), "end": round(offset + s.end, 3),
           "text": s.text.strip(), "avg_logprob": round(float(s.avg_logprob), 4),
           "compression_ratio": round(float(s.compression_ratio), 3),
           "no_speech_prob": round(float(s.no_speech_prob), 4),
           "temperature": s.temperature}
    if words and s.words:
        out["words"] = [{"start": round(offset + w.start, 3), "end": round(offset + w.end, 3),
                         "word": w.word, "probability": round(float(w.probability), 3)}
                        for w in s.words]
    return out


def _sequential(m: Loaded, job: ChunkJob, audio: Samples) -> dict[str, Any]:
    opts = {**m.options.whisper_kwargs(), **job.retry_options}
    segments, info = m.model.transcribe(audio, language=job.language, **opts)
    out = [_segment(s, job.start_s, m.options.word_timestamps) for s in segments]
    return {"segments": out, "language": info.language,
            "language_probability": round(float(info.language_probability), 4)}


def _detect(m: Loaded, job: ChunkJob, audio: Samples) -> dict[str, Any]:
    if not m.model.model.is_multilingual:
        return {"segments": [], "language": "en", "language_probability": 1.0}
    language, prob, _ = m.model.detect_language(audio[: int(DETECT_S * RATE)])
    return {"segments": [], "language": language, "language_probability": round(float(prob), 4)}


def _needs_fallback(segs: list[dict[str, Any]]) -> bool:
    return any(s["compression_ratio"] > COMPRESSION_LIMIT or s["avg_logprob"] < LOGPROB_LIMIT
               for s in segs)


def _batched(m: Loaded, jobs: list[ChunkJob], audios: list[Samples]) -> list[dict[str, Any]]:
    """All windows of all `jobs` in one batched pass (their language is the same).

    The batched decoder drops a window's unfinished last segment (the sequential decoder
    seeks back and decodes it again); so does this: a window whose transcript stops well
    before its end while sound follows is decoded again from there, in the next pass."""
    assert m.pipeline is not None
    offsets, pos = [], 0
    pending: list[tuple[int, int, int]] = []  # (job index, start, end) in the joined audio
    for i, audio in enumerate(audios):
        offsets.append(pos)
        cuts = windows(audio) if not m.options.vad_filter else _speech_windows(audio)
        pending += [(i, pos + a, pos + b) for a, b in cuts if b > a]
        pos += audio.size
    joined = np.concatenate(audios) if audios else np.zeros(0, dtype=np.float32)
    results: list[dict[str, Any]] = [{"segments": [], "language": jobs[0].language or "",
                                      "language_probability": 1.0} for _ in jobs]
    kw = m.options.whisper_kwargs()
    for key in ("vad_filter", "condition_on_previous_text"):
        kw.pop(key)
    language = jobs[0].language
    for _ in range(MAX_PASSES):
        if not pending:
            break
        segments, info = m.pipeline.transcribe(
            joined, language=language, batch_size=m.batch_size, without_timestamps=False,
            clip_timestamps=[{"start": a / RATE, "end": b / RATE} for _, a, b in pending],
            **kw)
        language = info.language
        by_seek = {int(a / RATE * FRAMES_PER_S): k for k, (_, a, _) in enumerate(pending)}
        per_clip: list[list[Any]] = [[] for _ in pending]
        for s in segments:
            per_clip[by_seek.get(s.seek, 0)].append(s)
        tails: list[tuple[int, int, int]] = []
        for (i, a, b), got in zip(pending, per_clip, strict=True):
            offset = jobs[i].start_s - offsets[i] / RATE
            segs = [_segment(s, offset, m.options.word_timestamps) for s in got]
            if _needs_fallback(segs) and len(m.options.temperature) > 1:
                lo, hi = a - offsets[i], b - offsets[i]
                window = ChunkJob(jobs[i].video_id, jobs[i].idx, jobs[i].path,
                                  jobs[i].start_s + lo / RATE, jobs[i].start_s + hi / RATE,
                                  language)
                segs = _sequential(m, window, audios[i][lo:hi])["segments"]
            elif got:
                covered = min(b, max(a, round(got[-1].end * RATE)))
                if b - covered > TAIL_S * RATE and _sounds(joined[covered:b], joined[a:b]):
                    tails.append((i, covered, b))
            results[i]["segments"] += segs
            results[i]["language"] = info.language
            results[i]["language_probability"] = round(float(info.language_probability), 4)
        pending = tails
    for r in results:
        r["segments"].sort(key=lambda s: s["start"])
    return results


def _sounds(tail: Samples, whole: Samples, frame: int = 320) -> bool:
    """Is there sound in `tail` (a frame within 30 dB of the window's loud frames)?"""
    def rms(x: Samples) -> Samples:
        k = x.size // frame
        return np.sqrt(np.square(x[: k * frame].reshape(k, frame)).mean(axis=1)) if k else \
            np.zeros(1, dtype=np.float32)

    ref = float(np.percentile(rms(whole), 90))
    return ref > 0 and float(rms(tail).max()) > ref * 10 ** (-30 / 20)


def _speech_windows(audio: Samples) -> list[tuple[int, int]]:
    """VAD speech spans merged into windows of at most 30 s (what `vad_filter` does)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=DETECT_S,
                                                    min_silence_duration_ms=160))
    out: list[tuple[int, int]] = []
    limit = int(DETECT_S * RATE)
    for sp in spans:
        if out and sp["end"] - out[-1][0] <= limit:
            out[-1] = (out[-1][0], sp["end"])
        else:
            out.append((sp["start"], sp["end"]))
    return out


def run_jobs(m: Loaded, jobs: list[ChunkJob]) -> list[Reply]:
    """One reply per job, in order."""
    t0 = time.monotonic()
    replies: list[Reply | None] = [None] * len(jobs)
    audios: dict[int, Samples] = {}
    for i, job in enumerate(jobs):
        end = min(job.end_s, job.start_s + DETECT_S) if job.detect_only else job.end_s
        try:
            audios[i] = read_span(job.path, job.start_s, end)
        except BadAudio as exc:
            replies[i] = ("bad_audio", str(exc))
        except Exception as exc:
            replies[i] = ("error", f"{type(exc).__name__}: {exc}")
    good = list(audios)
    # conditioning on the previous window's text needs the sequential decoder
    sequential = m.pipeline is None or m.options.condition_on_previous_text
    batchable = [i for i in good if not sequential and not jobs[i].retry_options
                 and not jobs[i].detect_only]
    done: dict[int, dict[str, Any]] = {}
    if batchable:
        try:
            for i, res in zip(batchable, _batched(m, [jobs[i] for i in batchable],
                                                  [audios[i] for i in batchable]),
                              strict=True):
                done[i] = res
        except Exception:
            done = {}  # the batch failed as a whole: every chunk alone, below
    for i in good:
        if i in done:
            continue
        try:
            if jobs[i].detect_only:
                done[i] = _detect(m, jobs[i], audios[i])
            elif sequential or jobs[i].retry_options:
                done[i] = _sequential(m, jobs[i], audios[i])
            else:  # a batched slot: the chunk alone through the batched pass
                done[i] = _batched(m, [jobs[i]], [audios[i]])[0]
        except Exception as exc:
            replies[i] = ("error", f"{type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - t0
    total = sum(jobs[i].audio_s for i in done) or 1.0
    for i, res in done.items():  # a batch's time is shared out by audio length
        share = elapsed * jobs[i].audio_s / total if len(done) > 1 else elapsed
        replies[i] = ("ok", {**res, "elapsed_s": share,
                             "batched_with": len(batchable) if i in batchable else 1})
    return [r if r is not None else ("error", "no reply") for r in replies]
