from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests import dbview
from ytpiped import config
from ytpiped.clock import SystemClock
from ytpiped.daemon import Daemon
from ytpiped.stages.base import Context, Item, Outcome, StageBase
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.stages import FakeStage
from ytpiped.worker import Wakeups


def fast_settings(data_dir: Path, **extra: object) -> config.Settings:
    flags: dict[str, object] = {"data_dir": str(data_dir), "daemon.poll_interval_s": 0.05,
                                "daemon.retry_base_s": 0.01, "daemon.retry_max_s": 0.05,
                                "daemon.shutdown_grace_s": 5.0}
    flags.update(extra)
    return config.load(flags=flags)


def seed(data_dir: Path, ids: list[str]) -> None:
    s = SqliteDB(db_path(data_dir), now=0)
    s.add_videos([NewVideo(i, f"https://example.org/{i}", "video") for i in ids], now=0)
    s.close()


class Outcomes:
    """Collects worker outcomes; `wait(pred)` returns when pred holds (no sleeps)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []
        self._changed = asyncio.Condition()

    def __call__(self, stage: str, event: str, video_id: str, kind: str | None) -> None:
        self.events.append((event, video_id, kind))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, pred: object, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: pred(self.events))  # type: ignore[operator]


async def start(settings: config.Settings, stages: list[FakeStage]) -> tuple[
        Daemon, Outcomes, asyncio.Task[int]]:
    out = Outcomes()
    d = Daemon(settings, stages=stages, environ={}, on_outcome=out)
    task = asyncio.create_task(d.serve())
    return d, out, task


async def test_fake_pipeline_takes_every_video_to_done(data_dir: Path) -> None:
    ids = [f"video{i:06d}" for i in range(6)]
    seed(data_dir, ids)
    stages = [FakeStage(n, concurrency=2) for n in
              ("download", "analyze", "transcribe", "mine", "evaluate")]
    d, out, task = await start(fast_settings(data_dir), stages)
    await out.wait(lambda ev: sum(1 for e in ev if e[0] == "completed") == 30)
    d.stop.set()
    assert await task == 0
    s = SqliteDB(db_path(data_dir), readonly=True)
    assert s.counts()["done"] == 6
    row = s.get(ids[0])
    s.close()
    assert row is not None and row.title == f"title of {ids[0]}"
    assert set(row.info) == {"download", "analyze", "transcribe", "mine", "evaluate"}


async def test_full_disk_is_a_cooldown_that_spends_no_attempt(data_dir: Path) -> None:
    seed(data_dir, ["fulldisk001"])
    stage = FakeStage("download", fail={"fulldisk001": "disk_full"})
    d, out, task = await start(fast_settings(data_dir, **{"download.max_attempts": 1}), [stage])
    await out.wait(lambda ev: ("cooldown", "fulldisk001", "disk_full") in ev)
    d.stop.set()
    assert await task == 0
    s = SqliteDB(db_path(data_dir), readonly=True)
    row = s.get("fulldisk001")
    s.close()
    assert row is not None and (row.state, row.attempts) == ("queued", 0)  # nothing lost
    assert row.next_attempt_at > time.time() + 200  # waits for space
    assert row.error is not None and row.error.startswith("disk full: [Errno 28]")
    assert str(data_dir) in row.error and "keeps its attempts" in row.error


async def test_crashing_stage_retries_then_fails_with_kind_and_message(data_dir: Path) -> None:
    seed(data_dir, ["goodvideo01", "badvideo001"])
    stage = FakeStage("download", fail={"badvideo001": "crash"})
    d, out, task = await start(fast_settings(data_dir, **{"download.max_attempts": 3}), [stage])
    await out.wait(lambda ev: ("failed", "badvideo001", "RuntimeError") in ev
                   and ("completed", "goodvideo01", None) in ev)
    d.stop.set()
    assert await task == 0
    assert [e[0] for e in out.events if e[1] == "badvideo001"] == ["retry", "retry", "failed"]
    s = SqliteDB(db_path(data_dir), readonly=True)
    bad = s.get("badvideo001")
    s.close()
    assert bad is not None
    assert (bad.state, bad.failed_stage, bad.error_kind, bad.attempts) == \
        ("failed", "download", "RuntimeError", 3)
    assert "fake crash while processing badvideo001" in (bad.error or "")
    assert "gave up after 3 attempts" in (bad.error or "")
    assert stage.seen.count("badvideo001") == 3


async def test_each_stage_has_its_own_attempt_cap(data_dir: Path) -> None:
    seed(data_dir, ["capdown0001", "capanal0001"])
    stages = [FakeStage("download", fail={"capdown0001": "crash"}),
              FakeStage("analyze", fail={"capanal0001": "crash"})]
    d, out, task = await start(fast_settings(data_dir, **{"download.max_attempts": 2,
                                                          "daemon.max_attempts": 4}), stages)
    await out.wait(lambda ev: sum(1 for e in ev if e[0] == "failed") == 2)
    d.stop.set()
    assert await task == 0
    s = SqliteDB(db_path(data_dir), readonly=True)
    down, anal = s.get("capdown0001"), s.get("capanal0001")
    s.close()
    assert down is not None and (down.failed_stage, down.attempts) == ("download", 2)
    assert anal is not None and (anal.failed_stage, anal.attempts) == ("analyze", 4)


async def test_permanent_fails_at_once(data_dir: Path) -> None:
    seed(data_dir, ["permvideo01"])
    stage = FakeStage("download", fail={"permvideo01": "permanent"})
    d, out, task = await start(fast_settings(data_dir), [stage])
    await out.wait(lambda ev: ("failed", "permvideo01", "fake_permanent") in ev)
    d.stop.set()
    await task
    row = dbview.row(data_dir, "permvideo01")
    assert row is not None and (row.state, row.attempts) == ("failed", 1)


async def test_shutdown_returns_inflight_work_without_spending_attempts(data_dir: Path) -> None:
    seed(data_dir, ["hangvideo01", "hangvideo02"])
    stage = FakeStage("download", fail={"hangvideo01": "hang", "hangvideo02": "hang"},
                      concurrency=2)
    d, _, task = await start(fast_settings(data_dir, **{"daemon.shutdown_grace_s": 0.05}),
                               [stage])
    async with asyncio.timeout(20):  # the stage has both in hand
        assert {await stage.started.get(), await stage.started.get()} == {"hangvideo01",
                                                                          "hangvideo02"}
    d.stop.set()
    assert await task == 0
    with SqliteDB(db_path(data_dir), readonly=True) as s:
        rows = [s.get(vid) for vid in ("hangvideo01", "hangvideo02")]
    assert [(r.state, r.attempts, r.lease_owner) for r in rows if r] == [("queued", 0, None)] * 2


async def test_lease_expiry_returns_work(data_dir: Path) -> None:
    seed(data_dir, ["leasevideo1"])
    s = SqliteDB(db_path(data_dir), now=0)
    s.claim("download", "dead-process", now=SystemClock().now(), lease_s=0.01)
    s.close()
    stage = FakeStage("download")
    settings = fast_settings(data_dir)
    d, out, task = await start(settings, [stage])
    await out.wait(lambda ev: ("completed", "leasevideo1", None) in ev)
    d.stop.set()
    await task
    assert stage.seen == ["leasevideo1"]


async def test_worker_gate_and_context_add_videos(data_dir: Path) -> None:
    seed(data_dir, ["parentlist1"])

    class Expander(StageBase):
        name = "download"
        gated = 0

        async def gate(self, ctx: Context) -> None:
            self.gated += 1

        async def run(self, item: Item, ctx: Context) -> Outcome:
            if item.id == "parentlist1":
                added, dup = await ctx.add_videos(
                    ["https://youtu.be/aaaaaaaaaaa", "https://youtu.be/aaaaaaaaaaa", "bbbbbbbbbbb"],
                    parent_id=item.id)
                await ctx.publish({"phase": "steady", "expanded": added})
                return Outcome(finished_state="done", info={"expanded": added, "dup": dup})
            return Outcome()

    stage = Expander()
    d, out, task = await start(fast_settings(data_dir), [stage])
    await out.wait(lambda ev: sum(1 for e in ev if e[0] == "completed") == 3)
    d.stop.set()
    await task
    s = SqliteDB(db_path(data_dir), readonly=True)
    parent = s.get("parentlist1")
    assert parent is not None and parent.state == "done"
    assert parent.info == {"expanded": 2, "dup": 1}
    assert s.counts()["downloaded"] == 2
    assert s.get_state("stage:download")[0] == {"phase": "steady", "expanded": 2}  # type: ignore[index]
    s.close()
    assert stage.gated >= 3


async def test_wakeups_map_states_to_stages() -> None:
    w = Wakeups()
    w.state_reached("downloaded")
    assert [n for n, e in w.events.items() if e.is_set()] == ["analyze"]


async def test_retry_backoff_defers_the_row(data_dir: Path) -> None:
    seed(data_dir, ["slowretry01"])
    settings = fast_settings(data_dir, **{"daemon.retry_base_s": 1000.0,
                                          "daemon.retry_max_s": 1000.0})
    stage = FakeStage("download", fail={"slowretry01": "crash"})
    d, out, task = await start(settings, [stage])
    await out.wait(lambda ev: ("retry", "slowretry01", "RuntimeError") in ev)
    d.stop.set()
    await task
    row = dbview.row(data_dir, "slowretry01")
    assert row is not None and row.state == "queued" and row.attempts == 1
    assert row.next_attempt_at - row.updated_at >= 500  # jitter keeps at least half of 1000


async def test_cooldown_puts_row_back_without_spending_an_attempt(data_dir: Path) -> None:
    seed(data_dir, ["coolvideo01"])
    stage = FakeStage("download", fail={"coolvideo01": "cooldown"})
    d, out, task = await start(fast_settings(data_dir), [stage])
    await out.wait(lambda ev: ("cooldown", "coolvideo01", "rate_limited") in ev)
    d.stop.set()
    await task
    row = dbview.row(data_dir, "coolvideo01")
    assert row is not None and (row.state, row.attempts, row.error_kind) == \
        ("queued", 0, "rate_limited")
    assert row.next_attempt_at >= row.updated_at + 3500
    with SqliteDB(db_path(data_dir), readonly=True) as st:
        assert st.event_counts_by_kind("cooldown") == {"rate_limited": 1}
