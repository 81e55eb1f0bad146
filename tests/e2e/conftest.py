"""Fixtures of the end-to-end tests: the local media server and FakeOllama, running on a
thread of their own while the real daemon runs as a subprocess."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer


@pytest.fixture
def servers() -> Iterator[tuple[MediaServer, FakeOllama]]:
    loop = asyncio.new_event_loop()
    media, llm = MediaServer(), FakeOllama(latency_s=0.05)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(media.start())
        loop.run_until_complete(llm.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    yield media, llm
    asyncio.run_coroutine_threadsafe(media.stop(), loop).result(30)
    asyncio.run_coroutine_threadsafe(llm.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()
