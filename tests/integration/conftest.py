from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ytpiped.testing.fake_youtube import ENV
from ytpiped.testing.media_server import MediaServer


@pytest_asyncio.fixture
async def fake_youtube(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MediaServer]:
    """The media server with its fake YouTube, and yt-dlp's YouTube URLs pointed at it
    (through the extractor plugin ytpiped.testing.ytdlp_plugin)."""
    async with MediaServer() as server:
        monkeypatch.setenv(ENV, server.url)
        yield server
