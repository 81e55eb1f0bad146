"""`ytpiped retranscribe` in the pipeline: a requested model runs on slots of that model
(started for it, closed after), and a video whose transcript came from its YouTube
subtitles is downloaded again and transcribed by Whisper."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from ytpiped import config
from ytpiped.engines.base import ChunkJob, ChunkResult, Engine, ModelUnavailable
from ytpiped.errors import Retryable
from ytpiped.retranscribe import plan
from ytpiped.stages.base import Item
from ytpiped.stages.transcribe import TranscribeStage
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.context import FakeContext
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer


class ModelEngine:
    """A fake slot that answers with the name of its model."""

    def __init__(self, model: str, calls: list[str]) -> None:
        self.device_kind, self.device_name, self.model = "cpu", "cpu", model
        self.calls = calls
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def transcribe(self, job: ChunkJob, timeout_s: float) -> ChunkResult:
        self.calls.append(self.model)
        return ChunkResult([{"start": job.start_s, "end": job.end_s,
                             "text": f"said by {self.model}"}], "en", 0.01, "cpu", self.model)


def video(vid: str, audio: Path, model: str | None) -> Item:
    info: dict[str, object] = {"chunks": [[0.0, 5.0]]}
    if model is not None:
        info["retranscribe"] = {"model": model, "at": 1.0}
    return Item(id=vid, url="u", kind="video", state="transcribing", attempts=0,
                duration_s=5.0, audio_path=str(audio), info=info)


async def test_a_requested_model_runs_on_slots_of_that_model(tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path), "download.keep_audio": True})
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"not read by the fake slots")
    calls: list[str] = []
    made: list[ModelEngine] = []

    def factory(model: str) -> Sequence[Engine]:
        made.append(ModelEngine(model, calls))
        return made[-1:]

    stage = TranscribeStage(settings, [ModelEngine("small", calls)], engine_factory=factory)
    for vid, model in (("newmodel001", "large-v3"), ("default0001", None),
                       ("samemodel01", "small")):
        out = await stage.run(video(vid, audio, model), FakeContext(settings))
        doc = json.loads((tmp_path / "transcripts" / f"{vid}.json").read_text())
        assert out.info["transcript"]["model"] == doc["model"] == (model or "small")
        assert doc["segments"][0]["text"] == f"said by {model or 'small'}"
        # the row keeps the files written (relative to the data dir), not format names
        paths = out.info["transcript"]["paths"]
        assert sorted(Path(p).name for p in paths) == [f"{vid}.{x}" for x in
                                                       ("json", "srt", "txt", "vtt")]
        assert all((tmp_path / p).is_file() for p in paths)
    assert calls == ["large-v3", "small", "small"]
    # slots of large-v3 were made for the one video that asked, and closed after it
    assert [(e.model, e.started, e.closed) for e in made] == [("large-v3", True, True)]
    assert stage.other_models == {}
    await stage.close()


@pytest.mark.slow
async def test_a_subtitled_video_is_transcribed_by_whisper_when_retranscribed(
        fake_youtube: MediaServer, tmp_path: Path) -> None:
    from tests.integration.test_sources_pipeline import SUBS, db, run_daemon, seed, terminal
    from tests.integration.test_sources_pipeline import watch as watch_url

    fake_youtube.youtube.video("subtitled01", "solar.webm", title="Solar", duration=9.5,
                               subtitles=SUBS)
    data = tmp_path / "data"
    data.mkdir()
    seed(data, [watch_url("subtitled01")])
    flags = {"transcribe.youtube_subtitles": "manual"}
    async with FakeOllama() as llm:
        await run_daemon(data, llm, terminal(1), **flags)
        s = SqliteDB(db_path(data))
        (p,) = plan(s.videos("done"), data)
        assert (p.target, p.source) == ("queued", "youtube_subtitles")  # no audio was fetched
        assert s.retranscribe({p.video_id: p.target}, now=1.0) == 1
        s.close()
        await run_daemon(data, llm, terminal(1), **flags)
    s = db(data)
    row = s.get("subtitled01")
    s.close()
    assert row is not None and row.state == "done", row
    doc = json.loads((data / "transcripts" / "subtitled01.json").read_text())
    assert doc["source"] == row.info["transcript"]["source"] == "whisper"
    assert "solar" in " ".join(x["text"] for x in doc["segments"]).lower()
    assert [p for _, p, _ in fake_youtube.log if p.startswith("/media/")] == [
        "/media/solar.webm"]


class MissingModel(ModelEngine):
    async def start(self) -> None:
        raise ModelUnavailable(f"key 'transcribe.model_cpu': cannot load {self.model!r}")


async def test_a_requested_model_that_cannot_load_is_retried_and_named(tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path), "download.keep_audio": True})
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"not read")
    calls: list[str] = []
    stage = TranscribeStage(settings, [ModelEngine("small", calls)],
                            engine_factory=lambda m: [MissingModel(m, calls)])
    with pytest.raises(Retryable, match=r"model 'large-v9' \(asked for by `ytpiped "
                                        r"retranscribe --model`\) cannot be loaded") as got:
        await stage.run(video("newmodel001", audio, "large-v9"), FakeContext(settings))
    assert got.value.kind == "model_unavailable" and calls == []
    assert stage.other_models == {}  # nothing left half-started
    await stage.close()


@pytest.mark.slow
async def test_a_video_with_its_audio_kept_is_not_downloaded_again(
        fake_youtube: MediaServer, tmp_path: Path) -> None:
    from tests.integration.test_sources_pipeline import db, run_daemon, seed, terminal
    from tests.integration.test_sources_pipeline import watch as watch_url

    fake_youtube.youtube.video("keptaudio01", "solar.webm", title="Solar", duration=9.5)
    data = tmp_path / "data"
    data.mkdir()
    seed(data, [watch_url("keptaudio01")])
    flags = {"download.keep_audio": True}
    async with FakeOllama() as llm:
        await run_daemon(data, llm, terminal(1), **flags)
        s = SqliteDB(db_path(data))
        (p,) = plan(s.videos("done"), data)
        assert (p.target, p.download) == ("analyzed", False)
        assert s.retranscribe({p.video_id: p.target}, now=1.0) == 1
        s.close()
        await run_daemon(data, llm, terminal(1), **flags)
    s = db(data)
    row = s.get("keptaudio01")
    runs = [(stage, event) for _, stage, event, _, _ in s.events_of("keptaudio01")
            if event == "completed"]
    s.close()
    assert row is not None and row.state == "done", row
    assert runs.count(("download", "completed")) == 1  # the kept audio was used
    assert runs.count(("transcribe", "completed")) == 2
    assert runs.count(("evaluate", "completed")) == 2
    assert [p for _, p, _ in fake_youtube.log if p.startswith("/media/")] == [
        "/media/solar.webm"]
