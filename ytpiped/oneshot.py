"""`ytpiped transcribe --audio-dir DIR --out DIR`: one-shot batch transcription of local
files with the daemon's own machinery (analysis chunk plan, slots, dispatcher, outputs),
no database. The original strategies are configurations of it: 1 GPU slot = sequential,
N CPU slots = parallel CPU, a worker per GPU = multi-GPU.

As in the daemon, nothing waits for everything before it: the models load while the
first file is analysed, and each file goes to the slots as soon as its analysis is done,
while the next one is analysed.

Outputs are named after the input's path relative to `--audio-dir` without its
extension (`talk.mp3` -> `talk.json`, `sub/talk.mp3` -> `sub/talk.json` with
`--recursive`); inputs that would share a name keep their extension (`talk.mp3` and
`talk.m4a` -> `talk.mp3.json` and `talk.m4a.json`)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from ytpiped import kinds
from ytpiped.clock import Clock, SystemClock
from ytpiped.config import Settings
from ytpiped.engines.base import Engine
from ytpiped.errors import StageError, UsageError
from ytpiped.scheduling.tracker import PerfSample
from ytpiped.stages.base import Item
from ytpiped.transcription import RENDERERS

if TYPE_CHECKING:  # the analysis (numpy, PyAV) is imported when files are analysed, so that
    # the CLI starts its workers without waiting for those imports
    from ytpiped.audio.analysis import Analysis

AUDIO_EXTS = {".m4a", ".webm", ".opus", ".mp3", ".wav", ".flac", ".ogg", ".aac", ".mp4",
              ".mkv", ".mka"}

Analyzer = Callable[[Path, float], "Analysis"]  # (file, max_chunk_s) -> chunk plan


@dataclass
class FileResult:
    path: str
    status: str  # done | skipped | failed
    kind: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    words: int = 0
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)


def configure(settings: Settings, *, device: str = "auto", workers: int | None = None,
              model: str | None = None, language: str | None = None,
              formats: Sequence[str] | None = None, gpus: int = 0) -> Settings:
    """The settings of a one-shot run from its flags (`gpus`: NVIDIA GPUs found). `--workers
    N` is the slots on the chosen device: the GPUs with `--device cuda`, or with `auto` on
    a machine that has one; the CPU otherwise."""
    if device == "cuda" and not gpus:
        raise UsageError("--device cuda: no NVIDIA GPU found (or its driver cannot be "
                         "loaded; `ytpiped hw` says why): use --device cpu or --device auto")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: give at least 1")
    on_gpu = device == "cuda" or (device == "auto" and gpus > 0)
    changes: dict[str, Any] = {}
    if model:
        changes["model_gpu"] = changes["model_cpu"] = model
    if language is not None:
        changes["language"] = language
    if formats is not None:
        unknown = [f for f in formats if f != "json" and f not in RENDERERS]
        if unknown:
            raise UsageError(f"--formats {','.join(formats)}: unknown format {unknown[0]!r} "
                             f"(give some of json, {', '.join(RENDERERS)})")
        changes["output_formats"] = tuple(formats)
    if device == "cpu":
        changes["gpu_slots"] = 0
    if device == "cuda":
        changes["cpu_slots"] = 0
    if workers is not None:
        changes["gpu_slots" if on_gpu else "cpu_slots"] = workers
    t = dataclasses.replace(settings.transcribe, **changes)
    return dataclasses.replace(settings, transcribe=t)


def find_audio(audio_dir: Path, recursive: bool = False) -> list[Path]:
    """Audio files in `audio_dir` (and its subfolders with `recursive`), sorted."""
    found = audio_dir.rglob("*") if recursive else audio_dir.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in AUDIO_EXTS)


def output_names(files: Sequence[Path], audio_dir: Path) -> dict[Path, str]:
    """file -> its output name (the module docstring says the rule)."""
    stems = {p: str(p.relative_to(audio_dir).with_suffix("")) for p in files}
    shared = {s for s in stems.values() if list(stems.values()).count(s) > 1}
    return {p: str(p.relative_to(audio_dir)) if s in shared else s for p, s in stems.items()}


class _Parts:
    """One file's chunk records, in memory (a one-shot run keeps no database); each saved
    chunk moves the progress on."""

    def __init__(self, on_chunk: Callable[[float], None]) -> None:
        self.data: dict[str, dict[int, Any]] = {}
        self.on_chunk = on_chunk

    async def load(self, kind: str) -> dict[int, Any]:
        return dict(self.data.get(kind, {}))

    async def save(self, kind: str, idx: int, data: Any) -> None:
        self.data.setdefault(kind, {})[idx] = data
        if kind == "chunk":
            lo, hi = data["bounds"]
            self.on_chunk(float(hi) - float(lo))

    async def clear(self, kind: str) -> None:
        self.data.pop(kind, None)


class _Context:
    """The stage Context of a one-shot run: settings, a log, a file's parts; no store."""

    def __init__(self, settings: Settings, on_chunk: Callable[[float], None]) -> None:
        self.settings = settings
        self.clock: Clock = SystemClock()
        self.log: structlog.typing.FilteringBoundLogger = structlog.get_logger("transcribe")
        self.parts = _Parts(on_chunk)
        self.owner = "oneshot"

    @property
    def data_dir(self) -> Path:
        return self.settings.data_path

    async def add_videos(self, urls: Sequence[str], parent_id: str) -> tuple[int, int]:
        return 0, len(urls)

    async def record_event(self, event: str, *, kind: str | None = None,
                           message: str | None = None) -> None:
        return None

    async def counts(self) -> Mapping[str, int]:
        return {}

    async def buffer_stats(self) -> tuple[int, int]:
        return 0, 0

    async def publish(self, status: Mapping[str, Any]) -> None:
        return None

    async def perf_samples(self) -> list[PerfSample]:
        return []

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        return None

    async def next_ready_at(self, only: str | None = None) -> float | None:
        return None  # no queue: the files are handed to the stage directly

    async def last_published(self) -> Mapping[str, Any] | None:
        return None

    async def give_back_attempts(self, spent: Mapping[str, int], kinds: Sequence[str]) -> int:
        return 0

    async def operator_request(self) -> Mapping[str, Any] | None:
        return None

    async def update_shared(self, key: str, change: Callable[[Any], Any]) -> Any:
        return change(copy.deepcopy(None))

    async def follows(self) -> Mapping[str, Any]:
        return {}

    async def save_follow(self, key: str, value: Mapping[str, Any]) -> bool:
        return False


class Progress:
    """Progress on stderr. On a terminal: a tqdm bar in seconds of audio, moved per chunk
    (its total grows as files are analysed). Elsewhere (a pipe, a log file): one plain
    line per finished file, no carriage returns."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.files = self.done_files = 0
        self.audio_total = self.audio_done = 0.0
        self.started = time.monotonic()
        self.bar: Any = None
        if out is not None and out.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=0.0, unit="s", unit_scale=True, file=out,
                            desc="transcribing", dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} "
                                       "s of audio [{elapsed}<{remaining}{postfix}]")

    def expect(self, files: int) -> None:
        self.files = files
        if self.bar is not None:
            self.bar.set_postfix_str(self._files())

    def analysed(self, audio_s: float) -> None:
        self.audio_total += audio_s
        if self.bar is not None:
            self.bar.total = round(self.audio_total, 1)
            self.bar.refresh()

    def chunk(self, audio_s: float) -> None:
        self.audio_done += audio_s
        if self.bar is not None:
            self.bar.set_postfix_str(self._files(), refresh=False)
            self.bar.update(audio_s)

    def file_done(self, name: str) -> None:
        self.done_files += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self._files())
        elif self.out is not None:
            elapsed = time.monotonic() - self.started
            rate = self.audio_done / elapsed if elapsed > 0 else 0.0
            left = self.audio_total - self.audio_done
            eta = "--:--" if rate <= 0 else f"{int(left / rate) // 60:02d}:" \
                                             f"{int(left / rate) % 60:02d}"
            self.out.write(f"{self._files()}: {name}; {self.audio_done / 60:.1f}/"
                           f"{self.audio_total / 60:.1f} min of audio, {rate:.1f}x real "
                           f"time, ETA {eta}\n")
            self.out.flush()

    def failed(self) -> None:
        """A file that failed before transcription (its analysis)."""
        self.files -= 1
        if self.bar is not None:
            self.bar.set_postfix_str(self._files())

    def _files(self) -> str:
        return f"{self.done_files}/{self.files} files"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def _run(files: list[Path], names: dict[Path, str], out_dir: Path, settings: Settings,
               progress: Progress, engines: Sequence[Engine] | None,
               analyzer: Analyzer) -> list[FileResult]:
    from ytpiped.pipeline import build_engines
    from ytpiped.stages.transcribe import TranscribeStage

    results: dict[Path, FileResult] = {}
    todo: list[Path] = []
    for p in files:
        if await asyncio.to_thread((out_dir / f"{names[p]}.json").exists):
            results[p] = FileResult(str(p), "skipped")
        else:
            todo.append(p)
    if not todo:  # slots the caller started (`ProcessEngine.spawn`) have nothing to do
        await asyncio.gather(*(e.close() for e in engines or ()), return_exceptions=True)
        return [results[p] for p in files]
    progress.expect(len(todo))
    stage = TranscribeStage(settings, build_engines(settings) if engines is None else engines,
                            out_dir=out_dir)
    loading = asyncio.ensure_future(stage.start())  # models load while files are analysed

    async def transcribe(p: Path, plan: Analysis) -> None:
        await asyncio.shield(loading)
        name = names[p]
        await asyncio.to_thread((out_dir / name).parent.mkdir, parents=True, exist_ok=True)
        item = Item(id=name, url=str(p), kind="video", state="transcribing", attempts=0,
                    title=p.name, duration_s=plan.duration_s, audio_path=str(p),
                    info={"chunks": [list(c) for c in plan.chunks]})
        try:
            outcome = await stage.run(item, _Context(settings, progress.chunk))
            t = outcome.info["transcript"]
            outputs = {fmt: str(out_dir / f"{name}.{fmt}")
                       for fmt in dict.fromkeys([*settings.transcribe.output_formats, "json"])}
            results[p] = FileResult(str(p), "done", duration_s=plan.duration_s,
                                    words=t["words"], outputs=outputs)
        except StageError as exc:
            results[p] = FileResult(str(p), "failed", exc.kind, str(exc))
        progress.file_done(name)

    async def analyse_all(tasks: asyncio.TaskGroup) -> None:
        from ytpiped.audio.analysis import BadAudio, NoAudio

        for p in todo:
            try:
                plan = await asyncio.to_thread(analyzer, p, settings.transcribe.max_chunk_s)
            except (BadAudio, NoAudio) as exc:
                kind = kinds.BAD_AUDIO if isinstance(exc, BadAudio) else kinds.NO_AUDIO
                results[p] = FileResult(str(p), "failed", kind, str(exc))
                progress.failed()
                continue
            progress.analysed(plan.duration_s)
            tasks.create_task(transcribe(p, plan), name=f"transcribe:{names[p]}")

    async def load() -> None:
        await asyncio.shield(loading)

    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(analyse_all(tasks), name="analyse")
            tasks.create_task(load(), name="load-models")
    except BaseExceptionGroup as eg:  # the models did not load, or a bug: the first cause
        raise eg.exceptions[0] from None
    finally:
        await stage.close()
        progress.close()
    return [results[p] for p in files]


def _analyze(path: Path, max_chunk_s: float) -> Analysis:
    from ytpiped.audio.analysis import analyze_path

    return analyze_path(path, max_chunk_s=max_chunk_s)


def transcribe_directory(audio_dir: str | Path, out_dir: str | Path, settings: Settings,
                         progress: TextIO | None = None, *, recursive: bool = False,
                         engines: Sequence[Engine] | None = None,
                         analyzer: Analyzer = _analyze) -> list[FileResult]:
    """Python API: transcribe every audio file in `audio_dir` (with `recursive`, its
    subfolders too) into `out_dir`; files whose JSON transcript exists are skipped.
    Relative paths are taken from the current directory. `engines`: the slots to use
    (default: built from `settings` and the hardware); `analyzer`: the chunk planner."""
    src, dst = Path(audio_dir).resolve(), Path(out_dir).resolve()
    dst.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(
        settings, download=dataclasses.replace(settings.download, keep_audio=True))
    files = find_audio(src, recursive)
    return asyncio.run(_run(files, output_names(files, src), dst, settings, Progress(progress),
                            engines, analyzer))


def summary(results: list[FileResult]) -> str:
    done = [r for r in results if r.status == "done"]
    failed = [r for r in results if r.status == "failed"]
    skipped = [r for r in results if r.status == "skipped"]
    lines = [f"transcribed {len(done)}, skipped {len(skipped)} (already done), failed "
             f"{len(failed)}; {sum(r.duration_s for r in done) / 60:.1f} min of audio, "
             f"{sum(r.words for r in done)} words"]
    lines += [f"  failed: {r.path} [{r.kind}] {r.error}" for r in failed]
    return "\n".join(lines)
