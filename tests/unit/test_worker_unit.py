"""StageWorker on the in-memory store and a fake clock: every outcome a stage can have,
persisted exactly as the contract says, in milliseconds. And retry.decide, pure."""

from __future__ import annotations

import asyncio
import errno
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ytpiped import config, retry
from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.stages.base import Context, Item, Outcome, StageBase
from ytpiped.store import NewVideo
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.memory_store import MemoryStore
from ytpiped.worker import StageWorker, Wakeups

VID = "unitvideo01"


class Scripted(StageBase):
    """Runs each video's next scripted step: an exception to raise or an Outcome."""

    name = "download"

    def __init__(self, steps: list[Exception | Outcome]) -> None:
        self.steps = steps
        self.calls = 0
        self.blocked = asyncio.Event()  # set: runs wait on `release` first
        self.release = asyncio.Event()
        self.running = asyncio.Event()

    async def run(self, item: Item, ctx: Context) -> Outcome:
        self.calls += 1
        self.running.set()
        if self.blocked.is_set():
            await self.release.wait()
        step = self.steps.pop(0) if self.steps else Outcome()
        if isinstance(step, Exception):
            raise step
        return step


async def settle(clock: FakeClock, until: Callable[[], Awaitable[bool]]) -> None:
    """Let the worker run (jumping virtual time when all wait on it) until `until()`."""
    for _ in range(10_000):
        if await until():
            return
        for _ in range(10):
            await asyncio.sleep(0)
        if clock.next_deadline() is not None:
            clock.advance(clock.next_deadline() - clock.monotonic())  # type: ignore[operator]
    raise AssertionError("the worker never got there")


async def rig(tmp_path: Path, stage: Scripted, **flags: object
              ) -> tuple[MemoryStore, FakeClock, StageWorker, asyncio.Event, asyncio.Task[None]]:
    settings = config.load(flags={"data_dir": str(tmp_path), "daemon.retry_base_s": 10,
                                  "daemon.retry_max_s": 100, **flags})
    store, clock = MemoryStore(), FakeClock()
    await store.add_videos([NewVideo(VID, "https://x/v", "video")], now=clock.now())
    worker = StageWorker(stage, store, settings, clock, "host:1", Wakeups(),
                         rng=random.Random(3))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    return store, clock, worker, stop, task


async def state_is(store: MemoryStore, state: str) -> bool:
    row = await store.get(VID)
    return row is not None and row.state == state


async def finish(stop: asyncio.Event, task: asyncio.Task[None], worker: StageWorker) -> None:
    stop.set()
    await task
    await worker.drain(0)


async def test_a_finished_run_is_completed_with_its_fields(tmp_path: Path) -> None:
    stage = Scripted([Outcome(fields={"title": "T"}, info={"k": 1})])
    store, clock, worker, stop, task = await rig(tmp_path, stage)
    await settle(clock, lambda: state_is(store, "downloaded"))
    row = await store.get(VID)
    assert row is not None and (row.title, row.info, row.attempts, row.lease_owner) == \
        ("T", {"k": 1}, 0, None)
    assert [e[2] for e in await store.events_of(VID)] == ["completed"]
    await finish(stop, task, worker)


async def test_a_failure_backs_off_then_succeeds(tmp_path: Path) -> None:
    stage = Scripted([RuntimeError("flaky"), Outcome()])
    store, clock, worker, stop, task = await rig(tmp_path, stage)
    await settle(clock, lambda: state_is(store, "downloaded"))
    assert stage.calls == 2
    events = await store.events_of(VID)
    assert [(e[2], e[3]) for e in events] == [("retry", "RuntimeError"), ("completed", None)]
    retried, completed = events[0][0], events[1][0]
    assert 5 <= completed - retried <= 10  # jittered backoff of the first retry (base 10 s)
    await finish(stop, task, worker)


async def test_retryable_defer_cooldown_and_permanent(tmp_path: Path) -> None:
    stage = Scripted([Retryable("later", kind="network", defer=42.0),
                      Cooldown("429", kind="rate_limited", until=0.0),
                      Permanent("gone", kind="unavailable")])
    store, clock, worker, stop, task = await rig(tmp_path, stage)
    await settle(clock, lambda: state_is(store, "failed"))
    row = await store.get(VID)
    assert row is not None
    # a retry spends an attempt, a cooldown does not, a permanent failure spends one
    assert (row.attempts, row.failed_stage, row.error_kind, row.error) == \
        (2, "download", "unavailable", "gone")
    events = await store.events_of(VID)
    assert [(e[2], e[3]) for e in events] == [("retry", "network"),
                                              ("cooldown", "rate_limited"),
                                              ("failed", "unavailable")]
    assert events[1][0] - events[0][0] == pytest.approx(42.0, abs=0.05)  # the stage's defer
    await finish(stop, task, worker)


async def test_attempts_run_out(tmp_path: Path) -> None:
    stage = Scripted([RuntimeError(str(i)) for i in range(10)])
    store, clock, worker, stop, task = await rig(tmp_path, stage,
                                                 **{"download.max_attempts": 3})
    await settle(clock, lambda: state_is(store, "failed"))
    row = await store.get(VID)
    assert row is not None and row.attempts == 3 and "gave up after 3 attempts" in \
        (row.error or "")
    assert stage.calls == 3
    await finish(stop, task, worker)


async def test_a_full_disk_is_a_cooldown(tmp_path: Path) -> None:
    stage = Scripted([OSError(errno.ENOSPC, "No space left on device"), Outcome()])
    store, clock, worker, stop, task = await rig(tmp_path, stage)
    await settle(clock, lambda: state_is(store, "downloaded"))
    events = await store.events_of(VID)
    assert (events[0][2], events[0][3]) == ("cooldown", "disk_full")
    row = await store.get(VID)
    assert row is not None and row.attempts == 0
    await finish(stop, task, worker)


async def test_shutdown_returns_the_run_without_spending_an_attempt(tmp_path: Path) -> None:
    stage = Scripted([])
    stage.blocked.set()
    store, _, worker, stop, task = await rig(tmp_path, stage)
    await stage.running.wait()
    assert await state_is(store, "downloading")
    stop.set()
    await task
    await worker.drain(0)  # no grace: cancel at once
    row = await store.get(VID)
    assert row is not None and (row.state, row.attempts, row.lease_owner) == \
        ("queued", 0, None)
    assert [e[2] for e in await store.events_of(VID)] == []


def test_retry_decide_backs_off_exponentially_with_jitter_and_gives_up() -> None:
    rng = random.Random(1)
    for attempt in range(1, 8):
        d = retry.decide(attempt, 10, 1000.0, rng, base_s=10, cap_s=300)
        assert isinstance(d, retry.RetryAt)
        ceiling = min(300.0, 10.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= d.at - 1000.0 <= ceiling
    assert retry.decide(3, 10, 0.0, rng, defer_s=7.5) == retry.RetryAt(7.5)
    assert retry.decide(2, 10, 0.0, rng, defer_s=-5) == retry.RetryAt(0.0)
    gave_up = retry.decide(10, 10, 0.0, rng)
    assert isinstance(gave_up, retry.GiveUp) and "10 attempts" in gave_up.reason
    assert [retry.doubling_s(level, 5, 30) for level in range(5)] == [5, 10, 20, 30, 30]


async def test_a_paused_stage_claims_nothing_until_resumed(tmp_path: Path) -> None:
    stage = Scripted([])
    settings = config.load(flags={"data_dir": str(tmp_path), "daemon.poll_interval_s": 1.0})
    store, clock = MemoryStore(), FakeClock()
    await store.add_videos([NewVideo(VID, "https://x/v", "video")], now=clock.now())
    await store.set_state("request:download", {"action": "pause", "at": 1.0}, clock.now())
    worker = StageWorker(stage, store, settings, clock, "host:1", Wakeups())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(20):  # twenty re-checks of the hold: nothing claimed
        await settle(clock, lambda: asyncio.sleep(0, result=True))
        clock.advance(1.0)
    assert stage.calls == 0 and await state_is(store, "queued")
    await store.set_state("request:download", {"action": "resume", "at": 2.0}, clock.now())
    await settle(clock, lambda: state_is(store, "downloaded"))
    assert stage.calls == 1
    await finish(stop, task, worker)


async def test_entries_a_playlist_adds_inherit_its_priority(tmp_path: Path) -> None:
    class Expander(StageBase):
        name = "download"

        async def run(self, item: Item, ctx: Context) -> Outcome:
            await ctx.add_videos(["aaaaaaaaaaa", "bbbbbbbbbbb"], parent_id=item.id)
            return Outcome(finished_state="done")

    settings = config.load(flags={"data_dir": str(tmp_path)})
    store, clock = MemoryStore(), FakeClock()
    await store.add_videos([NewVideo("playlist:PLx", "https://x/p", "playlist")],
                           now=clock.now(), priority=3)
    worker = StageWorker(Expander(), store, settings, clock, "host:1", Wakeups())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def expanded() -> bool:
        return (await store.get("bbbbbbbbbbb")) is not None

    await settle(clock, expanded)
    await finish(stop, task, worker)
    children = [await store.get(v) for v in ("aaaaaaaaaaa", "bbbbbbbbbbb")]
    assert [(c.parent_id, c.priority) for c in children if c] == [("playlist:PLx", 3)] * 2
