"""`ytpiped transcribe --audio-dir DIR --out DIR`: one-shot batch transcription of local
files with the daemon's own machinery (analysis chunk plan, slots, dispatcher, outputs),
no database. The original strategies are configurations of it: 1 GPU slot = sequential,
N CPU slots = parallel CPU, a worker per GPU = multi-GPU."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ytpiped import kinds
from ytpiped.audio.analysis import BadAudio, NoAudio, analyze_path
from ytpiped.config import Settings
from ytpiped.errors import StageError
from ytpiped.stages.base import Item
from ytpiped.testing.context import FakeContext

AUDIO_EXTS = {".m4a", ".webm", ".opus", ".mp3", ".wav", ".flac", ".ogg", ".aac", ".mp4",
              ".mkv", ".mka"}


@dataclass
class FileResult:
    path: str
    status: str  # done | skipped | failed
    kind: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    words: int = 0
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)


def _progress(out: TextIO, done: int, total: int, audio_done: float, audio_total: float,
              started: float) -> None:
    elapsed = time.monotonic() - started
    rate = audio_done / elapsed if elapsed > 0 else 0.0
    eta = (audio_total - audio_done) / rate if rate > 0 else None
    width = 30
    fill = int(width * audio_done / audio_total) if audio_total else 0
    eta_text = "--:--" if eta is None else f"{int(eta) // 60:02d}:{int(eta) % 60:02d}"
    out.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} files, "
              f"{rate:.1f}x real time, ETA {eta_text} ")
    out.flush()


async def _run(files: list[Path], out_dir: Path, settings: Settings,
               progress: TextIO | None) -> list[FileResult]:
    from ytpiped.pipeline import build_engines
    from ytpiped.stages.transcribe import TranscribeStage

    results: dict[Path, FileResult] = {}
    todo: list[tuple[Path, Any]] = []
    for p in files:
        if await asyncio.to_thread((out_dir / f"{p.stem}.json").exists):
            results[p] = FileResult(str(p), "skipped")
            continue
        try:
            plan = await asyncio.to_thread(analyze_path, p,
                                           max_chunk_s=settings.transcribe.max_chunk_s)
            todo.append((p, plan))
        except (BadAudio, NoAudio) as exc:
            kind = kinds.BAD_AUDIO if isinstance(exc, BadAudio) else kinds.NO_AUDIO
            results[p] = FileResult(str(p), "failed", kind, str(exc))
    engines = build_engines(settings)
    stage = TranscribeStage(settings, engines, out_dir=out_dir)
    await stage.start()
    total_audio = sum(a.duration_s for _, a in todo)
    done_audio, done_files, started = 0.0, 0, time.monotonic()

    async def one(p: Path, plan: Any) -> None:
        nonlocal done_audio, done_files
        ctx = FakeContext(settings)
        item = Item(id=p.stem, url=str(p), kind="video", state="transcribing", attempts=0,
                    title=p.name, duration_s=plan.duration_s, audio_path=str(p),
                    info={"chunks": [list(c) for c in plan.chunks]})
        try:
            outcome = await stage.run(item, ctx)
            t = outcome.info["transcript"]
            results[p] = FileResult(str(p), "done", duration_s=plan.duration_s,
                                    words=t["words"], outputs=t["paths"])
        except StageError as exc:
            results[p] = FileResult(str(p), "failed", exc.kind, str(exc))
        done_audio += plan.duration_s
        done_files += 1
        if progress is not None:
            _progress(progress, done_files, len(todo), done_audio, total_audio, started)

    try:
        await asyncio.gather(*(one(p, plan) for p, plan in todo))
    finally:
        await stage.close()
        if progress is not None and todo:
            progress.write("\n")
    return [results[p] for p in files]


def transcribe_directory(audio_dir: str | Path, out_dir: str | Path, settings: Settings,
                         progress: TextIO | None = None) -> list[FileResult]:
    """Python API: transcribe every audio file in `audio_dir` into `out_dir`."""
    src, dst = Path(audio_dir), Path(out_dir)
    dst.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(
        settings, download=dataclasses.replace(settings.download, keep_audio=True))
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTS)
    return asyncio.run(_run(files, dst, settings, progress))


def summary(results: list[FileResult]) -> str:
    done = [r for r in results if r.status == "done"]
    failed = [r for r in results if r.status == "failed"]
    skipped = [r for r in results if r.status == "skipped"]
    lines = [f"transcribed {len(done)}, skipped {len(skipped)} (already done), failed "
             f"{len(failed)}; {sum(r.duration_s for r in done) / 60:.1f} min of audio, "
             f"{sum(r.words for r in done)} words"]
    lines += [f"  failed: {r.path} [{r.kind}] {r.error}" for r in failed]
    return "\n".join(lines)
