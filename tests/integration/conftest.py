from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.fake_youtube import ENV
from ytpiped.testing.media_server import MediaServer


@pytest_asyncio.fixture
async def fake_youtube(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MediaServer]:
    """The media server with its fake YouTube, and yt-dlp's YouTube URLs pointed at it
    (through the extractor plugin ytpiped.testing.ytdlp_plugin)."""
    async with MediaServer() as server:
        monkeypatch.setenv(ENV, server.url)
        yield server


@pytest.fixture(params=("ollama", "openai"))
def api(request: pytest.FixtureRequest) -> str:
    """The LLM client API a mining test runs with (both against FakeOllama)."""
    return str(request.param)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    """A FakeOllama serving two requests at once, answering in 2 ms."""
    async with FakeOllama(parallel=2, latency_s=0.002) as f:
        yield f
