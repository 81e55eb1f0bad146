"""The daemon's lifecycle (after uvicorn's): whatever fails during start-up, what was
opened is closed; a side task that dies stops the daemon with exit 1; the signal
handlers of an embedding program come back after serve()."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.integration.test_worker import fast_settings, seed
from ytpiped import control
from ytpiped.daemon import Daemon
from ytpiped.errors import EXIT_FAILURE
from ytpiped.stages.base import Context, Item, Outcome, StageBase
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.stages import FakeStage


class BrokenStart(StageBase):
    name = "download"

    async def start(self, ctx: Context) -> None:
        raise RuntimeError("the stage cannot start")

    async def run(self, item: Item, ctx: Context) -> Outcome:
        raise AssertionError("never claimed")


class BrokenGate(StageBase):
    name = "analyze"

    async def gate(self, ctx: Context) -> None:
        raise RuntimeError("the gate broke")

    async def run(self, item: Item, ctx: Context) -> Outcome:
        raise AssertionError("never claimed")


def sentinel(signum: int, frame: object) -> None:
    raise AssertionError("not called")


async def test_any_start_up_failure_closes_socket_store_and_lock(data_dir: Path) -> None:
    seed(data_dir, ["startfail01"])
    before = signal.signal(signal.SIGTERM, sentinel)
    closed: list[str] = []

    class Recording(FakeStage):
        async def close(self) -> None:
            closed.append(self.name)

    try:
        d = Daemon(fast_settings(data_dir), stages=[Recording("download"), BrokenStart()],
                   environ={})
        with pytest.raises(RuntimeError, match="cannot start"):
            await d.serve()
        assert not (data_dir / control.SOCKET_NAME).exists()
        assert d.store is not None and not d.store.opened
        assert closed == ["download"]  # stages that started are closed again
        assert signal.getsignal(signal.SIGTERM) is sentinel  # the embedder's handler is back
        # the lock is free: a daemon with working stages starts on the same data dir
        again = Daemon(fast_settings(data_dir), stages=[FakeStage("download")], environ={})
        task = asyncio.create_task(again.serve())
        async with asyncio.timeout(20):
            await again.ready.wait()
        again.stop.set()
        assert await task == 0
    finally:
        signal.signal(signal.SIGTERM, before)
    s = SqliteDB(db_path(data_dir), readonly=True)
    state = s.get_state("daemon")
    s.close()
    assert state is not None and state[0]["pid"] is None  # recorded as stopped


async def test_a_side_task_that_dies_stops_the_daemon_with_exit_1(data_dir: Path) -> None:
    seed(data_dir, ["sidetask001"])
    d = Daemon(fast_settings(data_dir), stages=[FakeStage("download"), BrokenGate()],
               environ={})
    async with asyncio.timeout(30):
        assert await d.serve() == EXIT_FAILURE
    assert not (data_dir / control.SOCKET_NAME).exists()
    s = SqliteDB(db_path(data_dir), readonly=True)
    row = s.get("sidetask001")
    s.close()
    assert row is not None and row.lease_owner is None  # nothing left leased
