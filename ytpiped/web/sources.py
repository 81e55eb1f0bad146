"""What the page reads and does, in the daemon and in `ytpiped web`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ytpiped import control, lock
from ytpiped import status as status_mod
from ytpiped.clock import Clock
from ytpiped.config import Settings
from ytpiped.store import SqliteDB, Store, StoreNotReady, db_path, is_postgres, open_sync
from ytpiped.store.blocking import BlockingStore
from ytpiped.web.app import Reader, Source, WebApp, serve


def sqlite_reader(data_dir: Path) -> Callable[[], Reader]:
    """A fresh read-only connection per request (never blocks the daemon's writer)."""
    def open_reader() -> Reader:
        path = db_path(data_dir)
        try:
            if path.exists():
                return SqliteDB(path, readonly=True)
        except StoreNotReady:
            pass
        return SqliteDB(Path(":memory:"))  # no database yet: an empty one
    return open_reader


class DaemonActions:
    """Retry a failed group, pause or resume a stage: what `ytpiped retry/pause/resume` do,
    on the daemon's store, waking its workers."""

    def __init__(self, store: Store, clock: Clock, wake: Callable[[], None]) -> None:
        self.store, self.clock, self.wake = store, clock, wake

    async def retry(self, stage: str | None, kind: str | None) -> int:
        n = await self.store.retry_failed(self.clock.now(), stage=stage, kind=kind)
        self.wake()
        return n

    async def hold(self, stage: str, action: str) -> None:
        now = self.clock.now()
        await self.store.set_state(f"request:{stage}", {"action": action, "at": now}, now)
        self.wake()


def standalone_source(settings: Settings) -> Source:
    """`ytpiped web`: the status of a daemon that answers on the socket, else the one built
    from the store; everything else read from the store (read-only)."""
    data = settings.data_path

    def open_reader() -> SqliteDB | BlockingStore:
        if is_postgres(settings.store.url):
            reader = open_sync(settings, readonly=True)
            if isinstance(reader, BlockingStore):
                return reader
        return cast(SqliteDB, sqlite_reader(data)())

    async def status() -> dict[str, Any]:
        raw = await control.fetch(data)
        if raw is not None:
            live: dict[str, Any] = json.loads(raw)
            return live
        pid = lock.lock_holder(data)

        def build() -> dict[str, Any]:
            reader = open_reader()
            try:
                return status_mod.build(reader, time.time(), pid)
            finally:
                reader.close()
        return await asyncio.to_thread(build)

    return Source(data, status, open_reader, "ytpiped web")


async def serve_standalone(settings: Settings, ready: Callable[[str], None] = print) -> None:
    """`ytpiped web`: serve read-only until SIGINT or SIGTERM."""
    w = settings.web
    app = WebApp(standalone_source(settings), token=w.token, bind=w.bind, refresh_s=w.refresh_s)
    runner, url = await serve(app.app(), w.bind, w.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        ready(url)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
