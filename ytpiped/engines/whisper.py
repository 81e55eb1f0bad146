"""What a Whisper worker process does with the jobs it is sent (runs in the child).

- Each chunk's audio is decoded from where the chunk starts (`span.read_span`).
- Unbatched slots (`batch_size = 1`) run faster-whisper's sequential decoder per chunk;
  so does every slot when `condition_on_previous_text` is set (only the sequential
  decoder has the previous window's text).
- Batched slots cut every chunk of the batch into windows of at most 30 s at its quiet
  moments (VAD's speech when `vad_filter` is set) and run all windows of all chunks
  through `BatchedInferencePipeline` as one pass (`clip_timestamps`). A window is decoded
  whole, without Whisper's timestamp tokens, and cut into segments at sentence ends and
  pauses (see `_batched`): with `word_timestamps` its words are aligned to the audio
  (faster-whisper's cross-attention alignment, 10-20 % of the decoding's time); without,
  each word's time is estimated from the window's own audio (`estimate_words`). The batched decoder
  samples at the first temperature only, so a window whose text fails Whisper's own
  checks (compression ratio > 2.4, average log probability < −1) is decoded again alone
  with the temperature fallback — what the sequential decoder does for itself. The
  options are therefore the same on every path.
- A failed batched pass falls back to one chunk at a time, so one bad chunk never fails
  the others; bad audio fails only its own chunk.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ytpiped.audio.decode import RATE, BadAudio
from ytpiped.engines.base import ChunkJob, DecodeOptions
from ytpiped.engines.span import Samples, read_span, windows
from ytpiped.transcription import compression_ratio

COMPRESSION_LIMIT = 2.4
LOGPROB_LIMIT = -1.0
DETECT_S = 30.0
NO_SPEECH_LIMIT = 0.6
SENTENCE_END = (".", "?", "!", "…")
PAUSE_S = 1.0  # a pause between words this long ends a segment
SEGMENT_S = 12.0  # a segment longer than this is cut at the next word
FRAMES_PER_S = 100  # Whisper's feature frames per second (`Segment.seek` counts them)
FRAME = RATE // 50  # 20 ms: the frames `estimate_words` measures speech in
SPEECH_DB_RATIO = 10 ** (-30 / 10)  # a frame 30 dB below the window's loud ones is quiet
MIN_PAUSE_S = 0.16  # a quiet stretch this long can end a sentence (`estimate_words`)
SNAP_S = 1.5  # how far from its estimated time a sentence end looks for one

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


def _batched(m: Loaded, jobs: list[ChunkJob], audios: list[Samples]) -> list[dict[str, Any]]:
    """All windows of all `jobs` in one batched pass (their language is the same).

    Each window is decoded whole, without Whisper's timestamp tokens: with them the
    model often ends a window early ("… in 10 years.<|16.08|>" and stop, 9 s before the
    window's end), which the sequential decoder repairs by decoding again from there and
    a single batched pass cannot. The window is cut into segments at sentence ends and
    pauses (`_split`) by its words' times: aligned to the audio with `word_timestamps`
    (the words are then part of the result), estimated from the audio without
    (`estimate_words`)."""
    assert m.pipeline is not None
    offsets, pos = [], 0
    clips: list[tuple[int, int, int]] = []  # (job index, start, end) in the joined audio
    for i, audio in enumerate(audios):
        offsets.append(pos)
        cuts = windows(audio) if not m.options.vad_filter else _speech_windows(audio)
        clips += [(i, pos + a, pos + b) for a, b in cuts if b > a]
        pos += audio.size
    results: list[dict[str, Any]] = [{"segments": [], "language": jobs[0].language or "",
                                      "language_probability": 1.0} for _ in jobs]
    if not clips:
        return results
    joined = np.concatenate(audios)
    kw = m.options.whisper_kwargs()
    for key in ("vad_filter", "condition_on_previous_text"):
        kw.pop(key)
    segments, info = m.pipeline.transcribe(
        joined, language=jobs[0].language, batch_size=m.batch_size, without_timestamps=True,
        clip_timestamps=[{"start": a / RATE, "end": b / RATE} for _, a, b in clips], **kw)
    by_seek = {int(a / RATE * FRAMES_PER_S): k for k, (_, a, _) in enumerate(clips)}
    per_clip: list[list[Any]] = [[] for _ in clips]
    for s in segments:
        # a segment names its clip by the clip's start in frames (rounding may differ by one)
        k = next((by_seek[f] for f in (s.seek, s.seek - 1, s.seek + 1) if f in by_seek), 0)
        per_clip[k].append(s)
    for (i, a, b), got in zip(clips, per_clip, strict=True):
        offset = jobs[i].start_s - offsets[i] / RATE
        if any(_fails(s) and not _silent(s) for s in got) and len(m.options.temperature) > 1:
            lo, hi = a - offsets[i], b - offsets[i]
            window = ChunkJob(jobs[i].video_id, jobs[i].idx, jobs[i].path,
                              jobs[i].start_s + lo / RATE, jobs[i].start_s + hi / RATE,
                              info.language)
            segs = _sequential(m, window, audios[i][lo:hi])["segments"]
        else:
            words = m.options.word_timestamps
            segs = [seg for s in got if not _silent(s)
                    for seg in _split(s, offset, a / RATE + offset, b / RATE + offset, words,
                                      None if words else estimate_words(s.text, joined[a:b],
                                                                        a / RATE))]
        results[i]["segments"] += segs
        results[i]["language"] = info.language
        results[i]["language_probability"] = round(float(info.language_probability), 4)
    for r in results:
        r["segments"].sort(key=lambda s: s["start"])
    return results


def _fails(s: Any) -> bool:
    """Whisper's own checks on a decoded window (what its temperature fallback uses)."""
    return bool(s.compression_ratio > COMPRESSION_LIMIT or s.avg_logprob < LOGPROB_LIMIT)


def _silent(s: Any) -> bool:
    """Whisper's no-speech rule (the sequential decoder skips such a window too)."""
    return bool(s.no_speech_prob > NO_SPEECH_LIMIT and s.avg_logprob < LOGPROB_LIMIT)


@dataclass(frozen=True)
class Word:
    """A word of a window with an estimated time (faster-whisper's `Word` has the same
    fields)."""

    word: str
    start: float
    end: float
    probability: float = 1.0


def estimate_words(text: str, audio: Samples, start_s: float) -> list[Word]:
    """The words of a window decoded whole, each timed by where its share of the text falls
    in the window's speech, at about the cost of one pass over the samples (what `_split`
    cuts segments by when the words are not aligned).

    The window's 20-ms frames louder than 30 dB below its loud ones are speech. A sentence
    ends at the quiet stretch (at least `MIN_PAUSE_S`) nearest to where its share of the
    text says, if one lies within `SNAP_S`; between those pauses, the characters are
    spread evenly over the speech frames, so a silent stretch takes no words. Times are
    seconds from the start of `audio` plus `start_s` (the window's start in the audio
    that `Segment` times count from)."""
    found = list(re.finditer(r"(\s*)(\S+)", text))  # a word keeps its space, as Whisper's
    spans = [(m.start(2), m.end()) for m in found]
    if not spans:
        return []
    n = audio.size // FRAME
    if n == 0:
        return [Word(m.group(), start_s, start_s) for m in found]
    energy = np.square(audio[: n * FRAME].reshape(n, FRAME), dtype=np.float64).mean(axis=1)
    loud = float(np.percentile(energy, 95))
    speech = energy > loud * SPEECH_DB_RATIO if loud > 0 else np.ones(n, dtype=bool)
    spoken = np.concatenate([[0], np.cumsum(speech)])  # speech frames before frame k

    def frame(chars: float, c0: int, c1: int, f0: int, f1: int, first: bool) -> int:
        """The frame where the share (chars - c0) / (c1 - c0) of [f0, f1)'s speech is
        reached: a word starts in the frame holding its first share, ends after its last."""
        lo, hi = int(spoken[f0]), int(spoken[f1])
        target = lo + (hi - lo) * (chars - c0) / max(1, c1 - c0)
        k = int(np.searchsorted(spoken, target, side="right" if first else "left"))
        return min(max(k - 1 if first else k, f0), f1)

    # the sentence ends, each moved to the nearest quiet stretch: the text's pieces
    quiet = _quiet_runs(speech, round(MIN_PAUSE_S * RATE / FRAME))
    pieces: list[tuple[int, int, int, int]] = []  # chars [c0, c1) spoken in frames [f0, f1)
    first, last = spans[0][0], spans[-1][1]
    c0, f0 = first, 0
    for (_, end), (after, _) in itertools.pairwise(spans):
        if not text[:end].endswith(SENTENCE_END):
            continue
        guess = frame(end, first, last, 0, n, False)
        near = [(max(a - guess, guess - b, 0), a, b) for a, b in quiet if a >= f0]
        if near and min(near)[0] * FRAME <= SNAP_S * RATE:
            _, a, b = min(near)
            pieces.append((c0, end, f0, a))
            c0, f0 = after, b
    pieces.append((c0, last, f0, n))
    out: list[Word] = []
    piece = iter(pieces)
    c0, c1, f0, f1 = next(piece)
    for m, (a, b) in zip(found, spans, strict=True):
        while b > c1:
            c0, c1, f0, f1 = next(piece)
        begin, end = frame(a, c0, c1, f0, f1, True), frame(b, c0, c1, f0, f1, False)
        out.append(Word(m.group(), round(start_s + begin * FRAME / RATE, 3),
                        round(start_s + end * FRAME / RATE, 3)))
    return out


def _quiet_runs(speech: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """[start, end) frames of the runs of at least `min_frames` non-speech frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[1], speech.astype(np.int8), [1]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)
            if b - a >= min_frames]


def _split(s: Any, offset: float, lo: float, hi: float, words: bool,
           timed: list[Word] | None = None) -> list[dict[str, Any]]:
    """One decoded window -> segments: a new one after a word that ends a sentence, at a
    pause of `PAUSE_S` between words, and before one would pass `SEGMENT_S`. Times are
    the words' (`timed`, else the aligned `s.words`; absolute: `offset` is added), kept
    inside the window [lo, hi]."""
    ws = list(timed if timed is not None else s.words or [])
    base = {"avg_logprob": round(float(s.avg_logprob), 4),
            "no_speech_prob": round(float(s.no_speech_prob), 4),
            "temperature": s.temperature}
    if not ws:  # nothing aligned (an empty window): the window is the segment
        text = s.text.strip()
        return [{"start": round(lo, 3), "end": round(hi, 3), "text": text,
                 "compression_ratio": round(compression_ratio(text), 3), **base}] \
            if text else []
    groups: list[list[Any]] = [[ws[0]]]
    for prev, w in itertools.pairwise(ws):
        group = groups[-1]
        if (prev.word.rstrip().endswith(SENTENCE_END) or w.start - prev.end >= PAUSE_S
                or w.end - group[0].start > SEGMENT_S):
            groups.append([w])
        else:
            group.append(w)

    def at(t: float) -> float:
        return round(min(max(offset + t, lo), hi), 3)

    out = []
    for group in groups:
        text = "".join(w.word for w in group).strip()
        if not text:
            continue
        seg = {"start": at(group[0].start), "end": at(group[-1].end), "text": text,
               "compression_ratio": round(compression_ratio(text), 3), **base}
        if words:
            seg["words"] = [{"start": at(w.start), "end": at(w.end), "word": w.word,
                             "probability": round(float(w.probability), 3)} for w in group]
        out.append(seg)
    return out


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
