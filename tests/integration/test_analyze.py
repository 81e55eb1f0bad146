from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import cli
from ytpiped import config
from ytpiped.audio.analysis import NoAudio, analyze_path
from ytpiped.audio.decode import BadAudio, decode, probe_duration
from ytpiped.errors import Permanent
from ytpiped.stages.analyze import AnalyzeStage
from ytpiped.stages.base import Item
from ytpiped.testing.context import FakeContext


@pytest.mark.slow
@pytest.mark.parametrize("name,seconds", [("solar.webm", 10.87), ("coffee.m4a", 11.5),
                                          ("ocean.mp3", 11.02), ("memory.wav", 6.82),
                                          ("long.opus", 61.25)])
def test_decode_every_container(media: Path, name: str, seconds: float) -> None:
    x = decode(media / name)
    assert x.dtype.name == "float32" and x.ndim == 1
    assert len(x) / 16000 == pytest.approx(seconds, abs=0.1)
    assert probe_duration(media / name) == pytest.approx(seconds, abs=0.1)



@pytest.mark.parametrize("name", ["solar.webm", "coffee.m4a", "ocean.mp3", "memory.wav",
                                  "truncated.mp3"])
def test_decoding_in_whole_seconds_gives_the_samples_of_decoding_frame_by_frame(
        media: Path, name: str) -> None:
    """`decode` takes 1-s frames from the resampler (fewer Python round trips): the same
    samples as resampling every decoded frame as it comes, to the last one."""
    import av
    import av.error
    import numpy as np

    parts = []
    with av.open(str(media / name)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        try:
            for frame in container.decode(container.streams.audio[0]):
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        except av.error.FFmpegError:
            pass  # truncated.mp3: what decodes before the damage
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    expected = np.concatenate(parts)
    got = decode(media / name)
    assert got.size == expected.size
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("make,message", [
    (lambda m, t: m / "broken.m4a", "not a readable audio/video container"),
    (lambda m, t: t / "empty.m4a", "empty file"),
    (lambda m, t: m / "manifest.json", "not a readable"),
    (lambda m, t: t / "missing.wav", "file not found"),
])
def test_bad_audio_says_what_is_wrong(media: Path, tmp_path: Path, make: object,
                                      message: str) -> None:
    (tmp_path / "empty.m4a").touch()
    path = make(media, tmp_path)  # type: ignore[operator]
    with pytest.raises(BadAudio, match=message):
        analyze_path(path, max_chunk_s=900)


def test_truncated_file_decodes_what_is_there(media: Path) -> None:
    a = analyze_path(media / "truncated.mp3", max_chunk_s=900)
    assert 3.0 < a.duration_s < 4.5  # a third of ocean.mp3


def test_silence_is_no_audio(media: Path) -> None:
    with pytest.raises(NoAudio, match="no usable audio"):
        analyze_path(media / "silence.webm", max_chunk_s=900)


def test_long_file_is_cut_in_its_pauses(media: Path) -> None:
    a = analyze_path(media / "long.opus", max_chunk_s=30)
    assert len(a.silences) == 3  # the three 2.5 s gaps between topics
    cuts = [e for _, e in a.chunks[:-1]]
    assert len(cuts) >= 2
    assert all(any(s <= c <= e for s, e in a.silences) for c in cuts)
    assert a.chunks[-1][1] == pytest.approx(a.duration_s, abs=1e-3)
    assert a.integrated_lufs is not None and -30 < a.integrated_lufs < -10


async def test_stage_outcome_and_failures(media: Path, tmp_path: Path) -> None:
    settings = config.load(flags={"data_dir": str(tmp_path), "transcribe.max_chunk_s": 30})
    ctx = FakeContext(settings)
    stage = AnalyzeStage()
    item = Item(id="longvideo01", url="u", kind="video", state="analyzing", attempts=0,
                audio_path=str(media / "long.opus"))
    out = await stage.run(item, ctx)
    assert out.fields["duration_s"] == pytest.approx(61.25, abs=0.1)
    assert len(out.info["chunks"]) == 3 and "integrated_lufs" in out.info["analysis"]
    for name, kind in (("broken.m4a", "bad_audio"), ("silence.webm", "no_audio")):
        bad = Item(id="x", url="u", kind="video", state="analyzing", attempts=0,
                   audio_path=str(media / name))
        with pytest.raises(Permanent) as err:
            await stage.run(bad, ctx)
        assert err.value.kind == kind and name in str(err.value)


def test_cli_analyze_json_and_errors(media: Path, data_dir: Path) -> None:
    r = cli(data_dir, "--set", "transcribe.max_chunk_s=30", "analyze", "--json",
            str(media / "long.opus"))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d) == {"duration_s", "sample_rate", "integrated_lufs", "loudness_range_lu",
                      "speech_ratio", "silences", "chunks"}
    assert d["sample_rate"] == 16000 and len(d["chunks"]) == 3
    bad = cli(data_dir, "analyze", str(media / "broken.m4a"))
    assert bad.returncode == 1 and "bad_audio" in bad.stderr
    missing = cli(data_dir, "analyze", str(media / "nope.wav"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_backend_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ytpiped.audio import torch_backend
    from ytpiped.errors import ConfigError
    from ytpiped.stages.analyze import choose_backend

    torch_cfg = config.load(flags={"data_dir": str(tmp_path), "analyze.backend": "torch"})
    auto_cfg = config.load(flags={"data_dir": str(tmp_path)})
    monkeypatch.setattr(torch_backend, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"analyze\.backend.*ytpiped\[gpu\]"):
        choose_backend(torch_cfg)
    monkeypatch.setattr(torch_backend, "cuda_available", lambda: False)
    assert choose_backend(auto_cfg) == "cpu"
    monkeypatch.setattr(torch_backend, "cuda_available", lambda: True)
    assert choose_backend(auto_cfg) == "torch"
