"""The JavaScript runtime that comes with the install, shown through yt-dlp itself: the
real YoutubeDL object, built as the download stage builds it, finds the Deno binary of
the `deno` package by the path ytpiped hands it, runs it, and runs the challenge-solver
scripts of yt-dlp-ejs with it. Offline: nothing is fetched."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog

from ytpiped import config
from ytpiped.download import jsruntime, ytdlp
from ytpiped.stages.base import Item
from ytpiped.stages.download import DownloadStage
from ytpiped.testing.context import FakeContext
from ytpiped.testing.media_server import MediaServer

LOG = structlog.get_logger("test")


def packaged() -> str:
    path = jsruntime.packaged_deno()
    assert path is not None, "the deno package is a dependency: `make install` brings it"
    return path


def test_the_installed_deno_package_is_what_auto_finds() -> None:
    path = packaged()
    assert Path(path).parent == Path(sysconfig.get_path("scripts"))  # the venv's bin/
    found = jsruntime.resolve("auto")
    assert found.problem is None and found.runtime == jsruntime.JsRuntime("deno", path)
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("deno ")


def test_yt_dlp_finds_the_runtime_by_the_path_given_and_runs_the_solver(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # as under systemd: the virtualenv's bin/ is not on PATH, so only the path handed to
    # yt-dlp can lead it to the runtime
    monkeypatch.setenv("PATH", "/nonexistent")
    settings = config.load()
    found = jsruntime.resolve(settings.download.js_runtime)
    assert found.runtime is not None
    check = ytdlp.check_js_runtime(ytdlp.Options.of(settings.download,
                                                    js_runtime=found.runtime), LOG)
    version = subprocess.run([packaged(), "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert check.problem is None
    assert (check.name, check.path, check.version) == ("deno", packaged(), version)
    assert check.supported  # yt-dlp accepts this Deno version
    assert check.solver == "python package"  # the scripts of yt-dlp-ejs, hash-checked
    assert check.ran  # Deno ran them, started by yt-dlp's provider with its own flags


def test_yt_dlp_reports_a_runtime_that_is_not_there(tmp_path: Path) -> None:
    fake = tmp_path / "deno"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    check = ytdlp.check_js_runtime(ytdlp.Options(js_runtime=jsruntime.JsRuntime(
        "deno", str(fake))), LOG)
    assert not check.ran and check.problem is not None and "deno" in check.problem


@pytest.mark.parametrize("setting,problem", [
    ("/nowhere/bin/deno", "/nowhere/bin/deno does not exist"),
    ("/usr/bin/python3", "cannot tell which runtime"),
])
def test_bad_runtime_settings_name_the_key(setting: str, problem: str) -> None:
    found = jsruntime.resolve(setting)
    assert found.runtime is None and found.problem is not None
    assert "key 'download.js_runtime'" in found.problem and problem in found.problem


def test_a_named_runtime_missing_from_path_says_how_to_fix_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = jsruntime.resolve("bun")
    assert found.runtime is None and found.problem is not None
    assert "bun is not installed or not on PATH" in found.problem


def test_yt_dlp_uses_the_path_it_is_given_not_its_own_search(tmp_path: Path) -> None:
    link = tmp_path / "bin" / "deno"
    link.parent.mkdir()
    os.symlink(packaged(), link)
    found = jsruntime.resolve(str(link))
    assert found.runtime == jsruntime.JsRuntime("deno", str(link))
    check = ytdlp.check_js_runtime(ytdlp.Options(js_runtime=found.runtime), LOG)
    assert check.path == str(link) and check.ran


@pytest_asyncio.fixture
async def server() -> AsyncIterator[MediaServer]:
    async with MediaServer() as s:
        yield s


async def test_the_stage_hands_yt_dlp_the_runtime_and_the_pass_through_settings(
        server: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yt_dlp

    seen: list[dict[str, Any]] = []
    real = yt_dlp.YoutubeDL.__init__

    def recording(self: Any, params: dict[str, Any] | None = None, *args: Any,
                  **kwargs: Any) -> None:
        seen.append(dict(params or {}))
        real(self, params, *args, **kwargs)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "__init__", recording)
    ctx = FakeContext(config.load(flags={
        "data_dir": str(tmp_path), "download.format": "bestaudio/best",
        "download.extractor_args": {"generic": {"impersonate": ["false"]}},
        "download.ytdlp_options": {"retries": 4}}))
    out = await DownloadStage().run(Item(id="rtvideo0001", url=server.media_url("coffee.m4a"),
                                         kind="generic", state="downloading", attempts=0),
                                    ctx)
    assert (tmp_path / out.fields["audio_path"]).exists()
    assert seen, "yt-dlp was not called"
    params = seen[-1]
    assert params["js_runtimes"] == {"deno": {"path": packaged()}}
    assert params["format"] == "bestaudio/best" and params["retries"] == 4
    assert params["extractor_args"] == {"generic": {"impersonate": ["false"]}}
