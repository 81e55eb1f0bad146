"""Leases under suspend and theft: a run whose lease is gone never writes and never runs
beside the run that claimed the row after it (fencing tokens; the reaper spares live
runs of its own process; the heartbeat cancels a run whose lease is lost)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_worker import Outcomes, fast_settings, seed
from tests.waiting import until
from ytpiped.daemon import Daemon
from ytpiped.stages.base import Context, Item, Outcome, StageBase
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.clock import FakeClock

LEASE_S = 3.0


class HeldStage(StageBase):
    """A download stage whose runs wait until the test lets them finish."""

    name = "download"
    concurrency = 2

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []  # (video id, attempt) per start
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.finish = asyncio.Event()
        self.cancelled: list[str] = []

    async def run(self, item: Item, ctx: Context) -> Outcome:
        self.runs.append((item.id, item.attempts))
        self.started.put_nowait(item.id)
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled.append(item.id)
            raise
        await ctx.parts.save("chunk", 0, {"by": "run", "n": len(self.runs)})
        return Outcome(fields={"title": "t"})


def collect_loop_errors(errors: list[dict[str, Any]]) -> None:
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))


def row(data_dir: Path, vid: str) -> Any:
    s = SqliteDB(db_path(data_dir), readonly=True)
    try:
        return s.get(vid)
    finally:
        s.close()


def completions(data_dir: Path) -> int:
    s = SqliteDB(db_path(data_dir), readonly=True)
    try:
        return int(s.conn.execute("SELECT count(*) FROM events WHERE event = 'completed'")
                   .fetchone()[0])
    finally:
        s.close()


async def start(data_dir: Path, stage: HeldStage, clock: FakeClock
                ) -> tuple[Daemon, Outcomes, asyncio.Task[int]]:
    settings = fast_settings(data_dir, **{"daemon.lease_s": LEASE_S,
                                          "daemon.reap_interval_s": 0.5})
    out = Outcomes()
    d = Daemon(settings, stages=[stage], environ={}, clock=clock, on_outcome=out)
    task = asyncio.create_task(d.serve())
    return d, out, task


async def test_suspend_longer_than_the_lease_runs_the_stage_once(data_dir: Path) -> None:
    """SIGSTOP/SIGCONT or a laptop suspend: on resume every timer fires at once and every
    lease looks expired. The reaper must not hand our own live run to a second run."""
    errors: list[dict[str, Any]] = []
    collect_loop_errors(errors)
    seed(data_dir, ["suspended01"])
    clock, stage = FakeClock(), HeldStage()
    d, out, task = await start(data_dir, stage, clock)
    async with asyncio.timeout(20):
        assert await stage.started.get() == "suspended01"
    before = row(data_dir, "suspended01")
    for _ in range(3):  # three suspends, each far longer than the lease
        clock.advance(8.0)
        resumed = clock.now()
        # the reaper and the heartbeat run after the resume and renew the lease; time goes
        # on from there, as after a real resume (a loop that was in a store call during the
        # jump set its timer after it)
        async with asyncio.timeout(60):
            await clock.drive(task, until=lambda t=resumed: (r := row(
                data_dir, "suspended01")).state != "downloading" or
                r.lease_until >= t + LEASE_S - 1.0)
        assert not task.done()
        for _ in range(4):  # a few more reaper rounds
            clock.advance(0.5)
            await until(lambda: (clock.next_deadline() or 0) > clock.monotonic(), "timers set")
    assert stage.runs == [("suspended01", 0)]
    assert row(data_dir, "suspended01").lease_token == before.lease_token
    stage.finish.set()
    await out.wait(lambda ev: ("completed", "suspended01", None) in ev)
    d.stop.set()
    assert await task == 0
    assert stage.runs == [("suspended01", 0)] and completions(data_dir) == 1
    assert errors == []


async def test_a_run_whose_lease_was_taken_is_cancelled_and_writes_nothing(
        data_dir: Path) -> None:
    """Another host (or a reaper that saw the lease expire) took the row: the heartbeat
    notices at its next renewal, cancels the run at once, and the run writes nothing."""
    errors: list[dict[str, Any]] = []
    collect_loop_errors(errors)
    seed(data_dir, ["takenvideo1"])
    clock, stage = FakeClock(), HeldStage()
    d, out, task = await start(data_dir, stage, clock)
    async with asyncio.timeout(20):
        await stage.started.get()
    other = SqliteDB(db_path(data_dir), now=0)
    other.conn.execute("UPDATE videos SET lease_until = 0")
    assert other.reap(now=clock.now()) == 1
    (theirs,) = other.claim("download", "otherhost:99", now=clock.now(), lease_s=3600)
    clock.advance(LEASE_S / 3)  # the heartbeat's next renewal
    await until(lambda: stage.cancelled == ["takenvideo1"], "stale run cancelled")
    await until(lambda: not d.workers[0].inflight, "run ended")
    got = other.get("takenvideo1")
    assert got is not None
    assert (got.state, got.lease_owner, got.lease_token) == \
        ("downloading", "otherhost:99", theirs.lease_token)
    assert other.load_parts("takenvideo1", "chunk") == {}
    assert [e for e in out.events if e[1] == "takenvideo1"] == []  # nothing persisted
    other.close()
    d.stop.set()
    assert await task == 0
    assert errors == []


async def test_a_late_result_of_a_stale_run_is_dropped(data_dir: Path) -> None:
    """The row was taken and the stale run finishes before its heartbeat notices: its
    outcome and its parts are refused by the token, logged, and nothing is raised."""
    errors: list[dict[str, Any]] = []
    collect_loop_errors(errors)
    seed(data_dir, ["lateresult1"])
    clock, stage = FakeClock(), HeldStage()
    d, _, task = await start(data_dir, stage, clock)
    async with asyncio.timeout(20):
        await stage.started.get()
    other = SqliteDB(db_path(data_dir), now=0)
    other.conn.execute("UPDATE videos SET lease_until = 0")
    other.reap(now=clock.now())
    other.claim("download", "otherhost:99", now=clock.now(), lease_s=3600)
    stage.finish.set()  # the stale run finishes before any renewal
    await until(lambda: not d.workers[0].inflight, "stale run ended")
    got = other.get("lateresult1")
    assert got is not None and (got.state, got.lease_owner) == ("downloading", "otherhost:99")
    assert other.load_parts("lateresult1", "chunk") == {}
    assert completions(data_dir) == 0
    other.close()
    d.stop.set()
    assert await task == 0
    assert errors == []


async def test_renewals_that_keep_failing_cancel_the_run_when_the_lease_runs_out(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A renewal that raises (database locked past the busy timeout) used to kill the
    heartbeat silently while the run went on without a lease."""
    errors: list[dict[str, Any]] = []
    collect_loop_errors(errors)
    seed(data_dir, ["lockedlease"])
    clock, stage = FakeClock(), HeldStage()
    d, _, task = await start(data_dir, stage, clock)
    async with asyncio.timeout(20):
        await stage.started.get()

    def locked(*_a: Any, **_k: Any) -> bool:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SqliteDB, "renew", locked)
    clock.advance(LEASE_S / 3)  # first failed renewal: the lease is still valid, run goes on
    await until(lambda: (clock.next_deadline() or 0) > clock.monotonic(), "retry scheduled")
    assert stage.cancelled == []
    for _ in range(8):  # retries until the lease has run out
        if stage.cancelled:
            break
        clock.advance(1.0)
        await until(lambda: bool(stage.cancelled) or
                    (clock.next_deadline() or 0) > clock.monotonic(), "next retry")
    await until(lambda: stage.cancelled == ["lockedlease"], "run cancelled")
    monkeypatch.undo()
    d.stop.set()
    assert await task == 0
    assert errors == []
    assert completions(data_dir) == 0


async def test_the_reaper_never_reaps_a_claim_still_being_registered(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window between a claim in the store and its lease record in the worker: a
    suspend that ends right there used to let the reaper hand the row to a second run."""
    import threading

    seed(data_dir, ["claimwindow"])
    claimed, release = threading.Event(), threading.Event()
    real_claim = SqliteDB.claim

    def slow_claim(self: SqliteDB, *a: Any, **k: Any) -> Any:
        rows = real_claim(self, *a, **k)
        if rows:
            claimed.set()
            release.wait(20)  # the process "suspended" right after the claim
        return rows

    monkeypatch.setattr(SqliteDB, "claim", slow_claim)
    clock, stage = FakeClock(), HeldStage()
    d, _, task = await start(data_dir, stage, clock)
    await until(claimed.is_set, "row claimed")
    clock.advance(8.0)  # the lease of the claim is long expired: the reaper wakes up
    await until(lambda: (clock.next_deadline() or 0) > clock.monotonic() or
                d.claims.locked(), "reaper woke")
    release.set()
    async with asyncio.timeout(20):
        assert await stage.started.get() == "claimwindow"
    for _ in range(4):  # a few reaper rounds
        clock.advance(0.5)
        await until(lambda: (clock.next_deadline() or 0) > clock.monotonic(), "timers set")
    assert stage.runs == [("claimwindow", 0)]
    stage.finish.set()
    await until(lambda: completions(data_dir) == 1, "completed")
    d.stop.set()
    assert await task == 0
    assert stage.runs == [("claimwindow", 0)]


async def test_a_renewal_racing_the_final_write_does_not_call_the_lease_lost(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run finished and its outcome is being written when the heartbeat's renewal
    comes: the renewal finds the row moved on, which is no lost lease."""
    import threading

    from structlog.testing import capture_logs

    seed(data_dir, ["finishrace1"])
    writing, release = threading.Event(), threading.Event()
    real_complete = SqliteDB.complete

    def slow_complete(self: SqliteDB, *a: Any, **k: Any) -> None:
        real_complete(self, *a, **k)
        writing.set()
        release.wait(20)  # the outcome is written; the call has not returned yet

    monkeypatch.setattr(SqliteDB, "complete", slow_complete)
    clock, stage = FakeClock(), HeldStage()
    with capture_logs() as logged:
        d, outcomes, task = await start(data_dir, stage, clock)
        async with asyncio.timeout(20):
            await stage.started.get()
        stage.finish.set()
        await until(writing.is_set, "outcome written")
        clock.advance(LEASE_S / 3)  # the heartbeat's renewal, queued behind the write
        release.set()
        await outcomes.wait(lambda ev: ("completed", "finishrace1", None) in ev)
        await until(lambda: not d.workers[0].inflight, "run ended")
        d.stop.set()
        assert await task == 0
    assert any(e["event"] == "stage_completed" for e in logged)  # the capture saw the run
    assert not [e for e in logged if e["event"] == "lease_lost"]
    assert completions(data_dir) == 1
