"""The generic StageWorker: claim -> lease -> run stage -> persist outcome or retry.

One worker per stage. It waits on any of: a free slot, the stage's gate, new work (a
wake-up or a timer), the stop event. The final status write of a job runs under
`asyncio.shield`; cancellation at shutdown puts the job back without spending an attempt.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ytpiped import kinds, logs, metrics, outputs, retry, search
from ytpiped.clock import Clock
from ytpiped.config import Settings
from ytpiped.errors import (
    DISK_FULL_PAUSE_S,
    Cooldown,
    InvalidTransition,
    Permanent,
    Retryable,
    StageError,
    is_disk_full,
)
from ytpiped.ingest import collect
from ytpiped.stages.base import Item, Outcome, Stage
from ytpiped.states import STAGES, State
from ytpiped.store import Event, PerfSample, Store, VideoRow
from ytpiped.store.search import SearchDocs

ERROR_TEXT_MAX = 2000


class Wakeups:
    """One event per stage; set when work lands in that stage's ready state."""

    def __init__(self) -> None:
        self.events = {name: asyncio.Event() for name in STAGES}
        self._by_ready = {st.ready: name for name, st in STAGES.items()}

    def state_reached(self, state: str) -> None:
        name = self._by_ready.get(State(state))
        if name is not None:
            self.events[name].set()

    def all(self) -> None:
        for ev in self.events.values():
            ev.set()


class StoreParts:
    """Sub-work rows of one run; every write is fenced by the run's lease token."""

    def __init__(self, store: Store, clock: Clock, video_id: str,
                 token: int | None = None) -> None:
        self._store, self._clock, self._id, self._token = store, clock, video_id, token

    async def load(self, kind: str) -> dict[int, Any]:
        return await self._store.load_parts(self._id, kind)

    async def save(self, kind: str, idx: int, data: Any) -> None:
        now = self._clock.now()
        await self._store.save_part(self._id, kind, idx, data, now, token=self._token)

    async def clear(self, kind: str) -> None:
        await self._store.clear_parts(self._id, kind, token=self._token)


@dataclass
class Lease:
    """The lease of one run: the row, the state it holds it in, its fencing token."""

    video_id: str
    state: str
    token: int
    lost: bool = False


class WorkerContext:
    """The Context a stage sees (ytpiped.stages.base.Context)."""

    def __init__(self, worker: StageWorker, video_id: str | None,
                 log: structlog.typing.FilteringBoundLogger, token: int | None = None,
                 priority: int = 0) -> None:
        self._w = worker
        self._video_id = video_id
        self._priority = priority  # entries a playlist or feed adds inherit it
        self.clock: Clock = worker.clock
        self.settings: Settings = worker.settings
        self.log = log
        self.parts = StoreParts(worker.store, worker.clock, video_id or "", token)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_path

    async def add_videos(self, urls: Sequence[str], parent_id: str) -> tuple[int, int]:
        targets, report = collect([(parent_id, list(urls))])
        now = self.clock.now()
        added, dup = await self._w.store.add_videos(targets, now, parent_id=parent_id,
                                                    priority=self._priority)
        if added:
            self._w.wakeups.state_reached(State.QUEUED)
        return added, dup + report.duplicate

    async def record_event(self, event: str, *, kind: str | None = None,
                           message: str | None = None) -> None:
        now = self.clock.now()
        vid, stage = self._video_id, self._w.stage.name
        await self._w.store.record_event(now, event, video_id=vid, stage=stage, kind=kind,
                                         message=message)

    async def counts(self) -> Mapping[str, int]:
        return await self._w.store.counts()

    async def buffer_stats(self) -> tuple[int, int]:
        return await self._w.store.buffer_stats()

    async def publish(self, status: Mapping[str, Any]) -> None:
        await self._w.publish(status)

    async def perf_samples(self) -> list[PerfSample]:
        return await self._w.store.perf_samples()

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        await self._w.store.add_perf_samples(samples)

    async def next_ready_at(self, only: str | None = None) -> float | None:
        return await self._w.store.next_ready_at(self._w.stage.name, only=only)

    async def last_published(self) -> Mapping[str, Any] | None:
        got = await self._w.store.get_state(self._w.status_key)
        return None if got is None else dict(got[0])

    async def give_back_attempts(self, spent: Mapping[str, int], kinds: Sequence[str]) -> int:
        now, stage = self.clock.now(), self._w.stage.name
        event = Event("attempt_given_back", stage, None, "the failure was not the video's fault")
        n = await self._w.store.give_back_attempts(spent, kinds, now, event)
        if n:
            self._w.wakeups.state_reached(State.QUEUED)
        return n

    async def operator_request(self) -> Mapping[str, Any] | None:
        key = f"request:{self._w.stage.name}"
        got = await self._w.store.get_state(key)
        return None if got is None else dict(got[0])

    @property
    def owner(self) -> str:
        return self._w.owner

    async def update_shared(self, key: str, change: Callable[[Any], Any]) -> Any:
        return await self._w.store.update_state(key, change, self.clock.now())

    async def follows(self) -> Mapping[str, Any]:
        return {k: v for k, (v, _) in (await self._w.store.all_state("follow:")).items()}

    async def save_follow(self, key: str, value: Mapping[str, Any]) -> bool:
        got = await self._w.store.get_state(key)
        if got is None or got[0] is None:  # `ytpiped unfollow` while it was checked
            return False
        await self._w.store.set_state(key, dict(value), self.clock.now())
        return True


def to_item(row: VideoRow) -> Item:
    return Item(id=row.id, url=row.url, kind=row.kind, state=row.state, attempts=row.attempts,
                title=row.title, channel=row.channel, duration_s=row.duration_s,
                size_bytes=row.size_bytes, audio_path=row.audio_path, info=row.info,
                priority=row.priority, parent_id=row.parent_id)


async def first_of(stop: asyncio.Event, aw: Awaitable[Any]) -> bool:
    """Await `aw` unless `stop` is set first; True when `aw` finished."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


class StageWorker:
    def __init__(self, stage: Stage, store: Store, settings: Settings, clock: Clock,
                 owner: str, wakeups: Wakeups, *, concurrency: int | None = None,
                 rng: random.Random | None = None,
                 on_publish: Callable[[str, Mapping[str, Any]], None] | None = None,
                 on_outcome: Callable[[str, str, str, str | None], None] | None = None,
                 claims: asyncio.Lock | None = None, host: str | None = None,
                 keep_outputs: bool = False) -> None:
        self.stage = stage
        # a store shared by hosts without shared files: results travel through the store
        self.keep_outputs = keep_outputs
        # where its live status goes: `stage:NAME`, or `stage:NAME@HOST` on a store that
        # several hosts share (status adds them up)
        self.status_key = f"stage:{stage.name}" + (f"@{host}" if host else "")
        # held while a claim is made and its lease registered (shared with the reaper)
        self.claims = claims or asyncio.Lock()
        self.states = STAGES[stage.name]
        self.store = store
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.wakeups = wakeups
        self.concurrency = concurrency or stage.concurrency
        self.rng = rng or random.Random()
        self.on_publish = on_publish
        self.on_outcome = on_outcome
        self.log = logs.get("ytpiped.worker", stage=stage.name)
        self.slots = asyncio.Semaphore(self.concurrency)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.leases: dict[str, Lease] = {}  # the leases of live runs (the reaper renews them)
        self.started: dict[str, float] = {}  # monotonic start of each live run (metrics)
        self.completed = 0

    @property
    def max_attempts(self) -> int:
        """Failed attempts before a video fails in this stage."""
        s = self.settings
        return s.download.max_attempts if self.stage.name == "download" else \
            s.daemon.max_attempts

    @property
    def lease_s(self) -> float:
        return self.settings.daemon.lease_s

    async def publish(self, status: Mapping[str, Any]) -> None:
        now = self.clock.now()
        data = dict(status)
        await self.store.set_state(self.status_key, data, now)
        if self.on_publish:
            self.on_publish(self.stage.name, data)

    async def start(self) -> None:
        """The stage's start-up, with a context of its own (daemon start, nothing claimed)."""
        await self.stage.start(WorkerContext(self, None, self.log))

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and start work until `stop` is set (then return; call drain())."""
        wake = self.wakeups.events[self.stage.name]
        ctx = WorkerContext(self, None, self.log)
        while not stop.is_set():
            if not await first_of(stop, self.slots.acquire()):
                return
            started = False
            try:
                if not await first_of(stop, self._hold()):
                    return
                if not await first_of(stop, self.stage.gate(ctx)):
                    return
                wake.clear()
                only = self._claim_only()
                async with self.claims:  # the reaper never sees a claim half registered
                    now = self.clock.now()
                    rows = await self.store.claim(self.stage.name, self.owner, now,
                                                  self.lease_s, 1, only=only)
                    if rows:  # the lease is this process's from the claim on
                        self.leases[rows[0].id] = Lease(rows[0].id, self.states.running,
                                                        rows[0].lease_token)
                if rows:
                    row = rows[0]
                    task = asyncio.create_task(self._run_item(row),
                                               name=f"{self.stage.name}:{row.id}")
                    self.inflight[row.id] = task
                    started = True
                    continue
            finally:
                if not started:
                    self.slots.release()
            await first_of(stop, self._idle(wake, only))

    async def paused(self) -> bool:
        """True while `ytpiped pause STAGE` holds this stage (until `ytpiped resume`)."""
        req = await self.store.get_state(f"request:{self.stage.name}")
        return req is not None and isinstance(req[0], dict) and req[0].get("action") == "pause"

    async def _hold(self) -> None:
        """Wait while the stage is held: nothing new is claimed, work in flight goes on. The
        request is read again every `daemon.poll_interval_s`."""
        held = False
        while await self.paused():
            if not held:
                held = True
                self.log.warning("stage_paused", by="ytpiped pause")
            await self.clock.sleep(self.settings.daemon.poll_interval_s)
        if held:
            self.log.info("stage_resumed", by="ytpiped resume")

    def _claim_only(self) -> str | None:
        """The class of rows the stage's gate let through (store.model.CLAIM_ONLY: while
        YouTube's pacing waits, the download gate lets only other hosts' entries by)."""
        only = getattr(self.stage, "claim_only", None)
        return only if isinstance(only, str) else None

    async def _idle(self, wake: asyncio.Event, only: str | None = None) -> None:
        """Wait for a wake-up, the next deferred row (of class `only`) becoming due, or the
        poll interval."""
        due = await self.store.next_ready_at(self.stage.name, only=only)
        timeout = self.settings.daemon.poll_interval_s
        if due is not None:
            timeout = min(timeout, max(0.0, due - self.clock.now()) + 0.01)
        waiter = asyncio.ensure_future(wake.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    async def drain(self, grace_s: float) -> None:
        """Give work in flight `grace_s` to finish, then cancel it (rows go back unspent)."""
        tasks = list(self.inflight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)

    def live_leases(self) -> list[tuple[str, str, int]]:
        """(video_id, state, token) of every run of this worker still holding its lease."""
        return [(x.video_id, x.state, x.token) for x in self.leases.values() if not x.lost]

    async def _heartbeat(self, lease: Lease, task: asyncio.Task[Any], log: Any) -> None:
        """Renew the lease every lease_s/3. When the row is no longer this run's, or the
        lease ran out while renewals kept failing, mark it lost and cancel the run at once:
        a stale run must not go on working (or writing) beside the run that claimed the row
        after it."""
        valid_until = self.clock.now() + self.lease_s
        failing = False
        while True:
            await self.clock.sleep(min(1.0, self.lease_s / 3) if failing else self.lease_s / 3)
            until = self.clock.now() + self.lease_s
            try:
                held = await self.store.renew(lease.video_id, self.owner, lease.state, until,
                                              token=lease.token)
            except Exception as exc:  # e.g. locked past the busy timeout: try until expiry
                if not failing:
                    log.warning("lease_renew_failed", error=logs.scrub(str(exc)))
                failing = True
                if self.clock.now() < valid_until:
                    continue
                held = False
            else:
                failing = False
                valid_until = until
            if not held:
                lease.lost = True
                log.warning("lease_lost", token=lease.token)
                task.cancel()
                return

    async def _run_item(self, row: VideoRow) -> None:
        log = self.log.bind(video_id=row.id, attempt=row.attempts + 1)
        lease = self.leases.get(row.id) or Lease(row.id, self.states.running, row.lease_token)
        self.leases[row.id] = lease
        ctx = WorkerContext(self, row.id, log, token=row.lease_token, priority=row.priority)
        me = asyncio.current_task()
        assert me is not None
        beat = asyncio.create_task(self._heartbeat(lease, me, log), name=f"lease:{row.id}")
        self.started[row.id] = self.clock.monotonic()
        try:
            log.info("stage_started")
            # the heartbeat stops as soon as the stage is done (a renewal racing the final
            # write would find the row moved on and call the lease lost); while the final
            # write waits (a full disk), the reaper renews the lease, still in self.leases
            try:
                if self.keep_outputs and self.stage.name in outputs.NEEDED_BY:
                    got = await outputs.fetch(self.store, self.settings.data_path, row.id,
                                              outputs.NEEDED_BY[self.stage.name])
                    if got:
                        log.info("outputs_fetched", kinds=got)
                outcome = await self.stage.run(to_item(row), ctx)
            except asyncio.CancelledError:
                beat.cancel()
                if lease.lost:  # cancelled by the heartbeat: nothing of this run is written
                    me.uncancel()
                    return
                await asyncio.shield(self._persist(self._release(row, log), lease, log))
                raise
            except Exception as exc:  # every failure is decided and persisted once, here
                beat.cancel()
                if lease.lost or (isinstance(exc, InvalidTransition) and exc.lease_lost):
                    self._stale(lease, log, "stage_failed")
                    return
                await asyncio.shield(self._persist(self._failed(row, exc, log), lease, log))
            else:
                beat.cancel()
                if lease.lost:  # the stage swallowed the heartbeat's cancel
                    while me.cancelling():
                        me.uncancel()
                    self._stale(lease, log, "outcome")
                    return
                await asyncio.shield(self._persist(self._complete(row, outcome, log), lease,
                                                   log))
        finally:
            beat.cancel()
            self.started.pop(row.id, None)
            self.leases.pop(row.id, None)
            self.inflight.pop(row.id, None)
            self.slots.release()

    def _stale(self, lease: Lease, log: Any, what: str) -> None:
        if not lease.lost:
            lease.lost = True
            log.warning("lease_lost", token=lease.token)
        log.warning("stale_result_dropped", result=what)

    async def _persist(self, write: Awaitable[None], lease: Lease, log: Any) -> None:
        """Run the final write of a run; a run that lost its lease drops its result (the
        row belongs to whoever claimed it next), and nothing escapes as an unretrieved
        task exception."""
        try:
            await write
        except InvalidTransition as exc:
            if exc.lease_lost:
                self._stale(lease, log, "outcome")
            else:
                log.error("outcome_not_saved", error=str(exc))
        except Exception as exc:
            log.error("outcome_not_saved", error=logs.scrub(str(exc)), exc_info=exc)

    async def _complete(self, row: VideoRow, outcome: Outcome, log: Any) -> None:
        new = outcome.finished_state or self.states.finished
        docs = await self._search_docs(row, outcome, log)
        now = self.clock.now()
        event = Event("completed", self.stage.name)
        if self.keep_outputs:
            await outputs.keep(self.store, self.settings.data_path, row.id, self.stage.name,
                               now, row.lease_token)
        await self.store.complete(row.id, self.owner, self.states.running, new, now,
                                  outcome.fields, outcome.info, event, token=row.lease_token,
                                  search=docs)
        self.completed += 1
        self.wakeups.state_reached(new)
        log.info("stage_completed", state=str(new))
        self._notify("completed", row.id, None)

    async def _search_docs(self, row: VideoRow, outcome: Outcome,
                           log: Any) -> SearchDocs | None:
        """What the finished stage adds to the search indexes (a transcript's passages, an
        evaluation's claims), written with the outcome; a file that cannot be read leaves
        the indexes as they are (`ytpiped reindex` rebuilds them)."""
        try:
            return await asyncio.to_thread(search.stage_docs, self.stage.name,
                                           self.settings.data_path, row.id, outcome.info)
        except (OSError, ValueError) as exc:
            log.warning("search_index_skipped", error=logs.scrub(str(exc)))
            return None

    async def _release(self, row: VideoRow, log: Any) -> None:
        now = self.clock.now()
        await self.store.release(row.id, self.owner, self.states.running, now,
                                 token=row.lease_token)
        log.info("stage_released")
        self._notify("released", row.id, None)

    async def _failed(self, row: VideoRow, exc: Exception, log: Any) -> None:
        now = self.clock.now()
        text = logs.scrub(str(exc) or type(exc).__name__)[:ERROR_TEXT_MAX]
        running, stage = self.states.running, self.stage.name
        max_attempts = self.max_attempts
        if not isinstance(exc, StageError) and is_disk_full(exc):
            # a full disk is not the video's fault: wait for space, spend no attempt
            text = (f"disk full: {text}; free space on {self.settings.data_path} (the video "
                    "keeps its attempts and is tried again)")[:ERROR_TEXT_MAX]
            exc = Cooldown(text, kind=kinds.DISK_FULL, until=now + DISK_FULL_PAUSE_S)
        if isinstance(exc, Cooldown):
            event = Event("cooldown", stage, exc.kind, text)
            await self.store.release(
                row.id, self.owner, running, now, next_attempt_at=exc.until, kind=exc.kind,
                error=text, event=event, token=row.lease_token)
            log.warning("stage_cooldown", kind=exc.kind, until=exc.until, error=text)
            self._notify("cooldown", row.id, exc.kind)
            return
        if isinstance(exc, Permanent):
            await self._fail(row, exc.kind, text, now, log)
            return
        kind = exc.kind if isinstance(exc, Retryable) else type(exc).__name__
        defer = exc.defer if isinstance(exc, Retryable) else None
        d = self.settings.daemon
        decision = retry.decide(row.attempts + 1, max_attempts, now, self.rng, defer_s=defer,
                                base_s=d.retry_base_s, cap_s=d.retry_max_s)
        if isinstance(decision, retry.GiveUp):
            await self._fail(row, kind, f"{text} ({decision.reason})", now, log)
            return
        event = Event("retry", stage, kind, text)
        at = decision.at
        await self.store.release(
            row.id, self.owner, running, now, next_attempt_at=at, spend_attempt=True, kind=kind,
            error=text, event=event, token=row.lease_token)
        log.warning("stage_retry", kind=kind, error=text, retry_in_s=round(decision.at - now, 1),
                    exc_info=not isinstance(exc, Retryable))
        self._notify("retry", row.id, kind)

    async def _fail(self, row: VideoRow, kind: str, text: str, now: float, log: Any) -> None:
        stage = self.stage.name
        event = Event("failed", stage, kind, text)
        await self.store.fail(row.id, self.owner, self.states.running, now, kind=kind,
                              error=text, event=event, token=row.lease_token)
        log.error("stage_failed", kind=kind, error=text)
        self._notify("failed", row.id, kind)

    def _notify(self, event: str, video_id: str, kind: str | None) -> None:
        started = self.started.get(video_id)
        metrics.stage_outcome(self.stage.name, event, kind,
                              None if started is None else self.clock.monotonic() - started)
        if self.on_outcome is not None:
            self.on_outcome(self.stage.name, event, video_id, kind)
