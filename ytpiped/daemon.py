"""`ytpiped run`: lifecycle startup -> main loop -> shutdown (after uvicorn's server.py).

Signal handlers only set flags. SIGTERM/SIGINT: stop claiming, give work in flight
`shutdown_grace_s`, cancel the rest (rows go back without spending an attempt), close the
store. A second SIGINT forces: in-flight work is cancelled at once. Every background task
is named and watched; if a side task dies, the daemon stops loudly (exit 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ytpiped import logs
from ytpiped.clock import Clock, SystemClock
from ytpiped.config import Settings
from ytpiped.control import ControlServer
from ytpiped.engines.base import ModelUnavailable
from ytpiped.errors import (
    EXIT_FAILURE,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    DataDirLocked,
)
from ytpiped.files import clean_temp_files, tighten
from ytpiped.lock import acquire_lock
from ytpiped.notify import Notifications
from ytpiped.sdnotify import Notifier
from ytpiped.stages.base import Stage
from ytpiped.store import (
    SqliteDB,
    SqliteStore,
    Store,
    free_bytes,
    is_postgres,
    is_store_full,
    make_store,
)
from ytpiped.store.blocking import BlockingStore, StatusReader
from ytpiped.store.factory import host_id
from ytpiped.store.postgres import PostgresStore
from ytpiped.worker import StageWorker, Wakeups


def load_stages(settings: Settings, clock: Clock) -> list[Stage]:
    """The stages to run: `daemon.stage_factory` ("module:function", called with the
    settings and the clock) or the built-in pipeline, less those `daemon.stages` leaves
    to other hosts."""
    spec = settings.daemon.stage_factory or "ytpiped.pipeline:build_stages"
    module_name, _, func_name = spec.partition(":")
    try:
        factory: Callable[[Settings, Clock], Sequence[Stage]] = getattr(
            importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"key 'daemon.stage_factory': cannot load {spec!r} ({exc})") from None
    only = settings.daemon.stages
    return [s for s in factory(settings, clock) if not only or s.name in only]


class Daemon:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 stages: Sequence[Stage] | None = None,
                 environ: Mapping[str, str] | None = None,
                 on_outcome: Callable[[str, str, str, str | None], None] | None = None,
                 store_opener: Callable[[Path, float], SqliteDB] | None = None) -> None:
        self.settings = settings
        self.store_opener = store_opener  # tests: open the database their way
        self.on_outcome = on_outcome
        self.clock = clock or SystemClock()
        self._stages = stages
        self.notifier = Notifier(environ if environ is not None else os.environ)
        self.notifications = Notifications(settings.notify, self.clock)  # webhook, ntfy
        # lease owner "HOST:PID"; hosts sharing one PostgreSQL store tell their leases apart
        self.host_id = host_id(settings)
        self.owner = f"{self.host_id}:{os.getpid()}"
        self.log = logs.get("ytpiped.daemon")
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.ready = asyncio.Event()  # set once serving (tests and embedders wait on it)
        self.sigint_count = 0
        self.claims = asyncio.Lock()  # workers claim under it; the reaper reaps under it
        self.workers: list[StageWorker] = []
        self.wakeups = Wakeups()
        self.store: SqliteStore | PostgresStore | None = None
        self.live: dict[str, Any] = {}
        self.control: ControlServer | None = None
        self.started_at = 0.0
        self.web_url: str | None = None  # the web page's address while it is served

    # ---------------------------------------------------------------- signals

    def handle_exit(self, sig: int) -> None:
        if sig == signal.SIGINT:
            self.sigint_count += 1
            if self.sigint_count > 1:
                self.force.set()
        self.stop.set()

    def _install_signals(self) -> Callable[[], None]:
        """Route SIGTERM/SIGINT to handle_exit; returns what puts the previous handlers
        back (an embedding program gets its own handlers again after serve())."""
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            loop.add_signal_handler(sig, self.handle_exit, sig)

        def restore() -> None:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                if handler is not None:
                    signal.signal(sig, handler)

        return restore

    # ---------------------------------------------------------------- lifecycle

    async def serve(self) -> int:
        """startup -> main loop -> shutdown. Every resource start-up opens is registered on
        one exit stack, so a failure at any step (a model that is not there, a port in use,
        a damaged database) closes what was opened before it: no socket, store or worker
        process is left behind."""
        data = self.settings.data_path
        lock = acquire_lock(data)
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_callback(self.notifications.close)  # last: what is queued
                stack.callback(self._install_signals())
                try:
                    return await self._serve(data, stack)
                except Exception as exc:
                    self.notifications.stopped(f"{type(exc).__name__}: {exc}")
                    raise
        finally:
            lock.close()

    async def _serve(self, data: Path, stack: contextlib.AsyncExitStack) -> int:
        self.started_at = self.clock.now()
        stages = list(self._stages) if self._stages is not None else \
            load_stages(self.settings, self.clock)
        # the control API first: `status` answers (and shows why) while start-up waits
        self.control = ControlServer(data, self.live, self.settings.daemon.metrics_port,
                                     self.settings.daemon.metrics_bind,
                                     open_reader=self._status_reader())
        await self.control.start()
        stack.push_async_callback(self.control.stop)
        recovered = await self._open_store(data, stack)
        store = self.store
        if recovered is None or store is None:  # stopped while the disk was full
            self.log.info("daemon_stopped", waited_for="disk space")
            return EXIT_OK
        await self._start_web(data, store, stack)
        orphans = await asyncio.to_thread(clean_temp_files, data)
        if orphans:
            self.log.info("temp_files_removed", count=orphans)
        tightened = await asyncio.to_thread(tighten, data)
        if tightened:
            self.log.info("permissions_tightened", count=tightened,
                          umask=f"0o{self.settings.daemon.umask:03o}")
        self.log.info("daemon_started", data_dir=str(data), pid=os.getpid(),
                      stages=[s.name for s in stages], recovered=recovered)
        wakeups = self.wakeups = Wakeups()
        self.workers = [StageWorker(s, store, self.settings, self.clock, self.owner, wakeups,
                                    on_publish=self._on_publish, on_outcome=self._on_outcome,
                                    claims=self.claims,
                                    host=self.host_id if isinstance(store, PostgresStore)
                                    else None,
                                    keep_outputs=isinstance(store, PostgresStore) and
                                    not store.shared_files)
                        for s in stages]
        stack.push_async_callback(self._close_stages, stages)
        try:
            for w in self.workers:
                await w.start()
        except ModelUnavailable as exc:  # a model key names something that is not there
            raise ConfigError(str(exc)) from None
        side: dict[str, asyncio.Task[Any]] = {
            "reaper": asyncio.create_task(self._reaper(store), name="reaper"),
            "notify": asyncio.create_task(self.notifications.run(store.counts),
                                          name="notify"),
        }
        if self.web_url is not None:
            side["history"] = asyncio.create_task(self._history(store), name="history")
        if self.notifier.watchdog_s:
            side["watchdog"] = asyncio.create_task(self._watchdog(), name="watchdog")
        if isinstance(store, PostgresStore):  # other hosts' work wakes this one's workers
            side["listen"] = asyncio.create_task(store.listen(self._heard), name="listen")
        side.update({f"worker:{w.stage.name}": asyncio.create_task(w.run(self.stop),
                                                                    name=f"worker:{w.stage.name}")
                     for w in self.workers})
        try:
            self.notifier.ready(f"running {len(stages)} stages")
            self.ready.set()
            return await self._main_loop(side)
        finally:
            await self._shutdown(side)

    async def _main_loop(self, side: dict[str, asyncio.Task[Any]]) -> int:
        stop_wait = asyncio.create_task(self.stop.wait(), name="stop-wait")
        while True:
            done, _ = await asyncio.wait({stop_wait, *side.values()},
                                         return_when=asyncio.FIRST_COMPLETED)
            if stop_wait in done:
                return EXIT_OK
            for name, task in side.items():
                if task in done and not self.stop.is_set():
                    exc = task.exception() if not task.cancelled() else None
                    self.log.error("side_task_died", task=name, error=repr(exc),
                                   exc_info=exc)
                    self.notifications.stopped(f"the side task {name} died: {exc!r}")
                    self.stop.set()
                    stop_wait.cancel()
                    return EXIT_FAILURE

    async def _shutdown(self, side: dict[str, asyncio.Task[Any]]) -> None:
        """Stop claiming, give work in flight the grace, cancel the rest (rows go back
        without spending an attempt). Stages, store and socket close on the exit stack."""
        self.stop.set()
        self.notifier.stopping()
        grace = 0.0 if self.force.is_set() else self.settings.daemon.shutdown_grace_s
        inflight = sum(len(w.inflight) for w in self.workers)
        self.log.info("daemon_stopping", inflight=inflight, grace_s=grace)
        for task in side.values():
            if task.get_name().startswith("worker:"):
                continue
            task.cancel()
        # workers stop claiming as soon as `stop` is set; wait for their loops to return
        await asyncio.gather(*side.values(), return_exceptions=True)
        drains = [asyncio.create_task(w.drain(grace)) for w in self.workers]
        force_wait = asyncio.create_task(self.force.wait())
        pending_drains = set(drains)
        while pending_drains:
            done, _ = await asyncio.wait({*pending_drains, force_wait},
                                         return_when=asyncio.FIRST_COMPLETED)
            pending_drains -= done
            if force_wait in done:
                for w in self.workers:
                    for t in w.inflight.values():
                        t.cancel()
                await asyncio.gather(*pending_drains, return_exceptions=True)
                break
        force_wait.cancel()
        self.log.info("daemon_stopped")

    async def _close_stages(self, stages: Sequence[Stage]) -> None:
        for s in stages:
            try:
                await s.close()
            except Exception as exc:
                self.log.warning("stage_close_failed", stage=s.name, error=str(exc))

    def _status_reader(self) -> Callable[[], StatusReader] | None:
        """How the control API reads status: with SQLite, its own read-only connection (the
        default); with PostgreSQL, through this daemon's pool, from the control thread."""
        if not is_postgres(self.settings.store.url):
            return None
        loop = asyncio.get_running_loop()

        def open_reader() -> StatusReader:
            store = self.store
            if store is None or not store.opened:  # still starting: nothing to read yet
                return SqliteDB(Path(":memory:"))
            return BlockingStore.on_loop(store, loop)

        return open_reader

    async def _close_store(self, store: SqliteStore | PostgresStore) -> None:
        store.begin_close()  # a full disk no longer holds the stop
        if store.opened:
            now = self.clock.now()
            try:
                await store.set_state("daemon", {"pid": None, "stopped_at": now}, now)
            except Exception as exc:
                self.log.warning("daemon_state_not_saved", error=str(exc))
        await store.close()

    async def _open_store(self, data: Path, stack: contextlib.AsyncExitStack) -> int | None:
        """Open the database, return every row a dead process held, record this daemon;
        the rows recovered, or None when a stop came while the disk was full (start-up on
        a full disk waits for space instead of exiting into a restart loop)."""
        store = self.store = make_store(self.settings, self.clock, on_full=self._store_full,
                                        on_writable=self._store_writable,
                                        opener=self.store_opener)
        stack.push_async_callback(self._close_store, store)
        stopper = asyncio.create_task(self._close_on_stop(store), name="start-stop")
        try:
            await store.open()
            now = self.clock.now()
            # what a dead process of this host held comes back now; on a shared store the
            # other hosts' leases are theirs (the reapers return a dead host's at expiry)
            shared = isinstance(store, PostgresStore)
            recovered = await store.reap(now, owner_not=self.owner, all_leases=True,
                                         owner_prefix=f"{self.host_id}:" if shared else None)
            moved = await store.relative_audio_paths()
            if moved:
                self.log.info("audio_paths_made_relative", count=moved)
            await store.set_state("daemon", {"pid": os.getpid(), "owner": self.owner,
                                             "started_at": now}, now)
            if isinstance(store, PostgresStore):
                await self._heartbeat(store)
        except Exception as exc:
            if self.stop.is_set() and isinstance(store, SqliteStore) and \
                    is_store_full(exc, store.path):
                return None
            raise
        finally:
            stopper.cancel()
        return recovered

    async def _close_on_stop(self, store: SqliteStore | PostgresStore) -> None:
        await self.stop.wait()
        store.begin_close()

    async def _start_web(self, data: Path, store: SqliteStore | PostgresStore,
                         stack: contextlib.AsyncExitStack) -> None:
        """The web page on web.bind:web.port. A port that cannot be had is a warning, not
        a stop: the page is a convenience, the pipeline is not."""
        from ytpiped.web.app import Reader, Source, WebApp, serve
        from ytpiped.web.sources import DaemonActions, sqlite_reader

        w = self.settings.web
        if not w.enabled or self.control is None:
            return
        open_reader: Callable[[], Reader] = sqlite_reader(data)
        if isinstance(store, PostgresStore):
            loop = asyncio.get_running_loop()

            def open_reader() -> Reader:
                return BlockingStore.on_loop(store, loop)

        app = WebApp(Source(data, self.control.status, open_reader, "daemon"),
                     actions=DaemonActions(store, self.clock, lambda: self.wakeups.all()),
                     bind=w.bind, token=w.token, refresh_s=w.refresh_s)
        try:
            runner, self.web_url = await serve(app.app(), w.bind, w.port)
        except OSError as exc:
            self.log.warning("web_unavailable", bind=w.bind, port=w.port,
                             error=exc.strerror or str(exc),
                             fix="set another web.port (0: any free port), or web.enabled = "
                                 "false")
            return
        stack.push_async_callback(runner.cleanup)
        self.log.info("web_listening", url=self.web_url)

    async def _history(self, store: Store) -> None:
        """A point of the web page's plots every web.history_interval_s."""
        from ytpiped.web import history

        assert self.control is not None
        await history.record(store, self.control.status, self.clock,
                             self.settings.web.history_interval_s, log=self.log)

    # ---------------------------------------------------------------- side tasks

    def _store_full(self, exc: BaseException, first: bool) -> None:
        """The disk under the database is full: every stage waits on its next write."""
        assert isinstance(self.store, SqliteStore)
        path = self.store.path
        free = free_bytes(path)
        alert = (f"the disk under {path} is full ({'?' if free is None else free // 2**20} MB "
                 f"free): every stage is paused and the failed write is retried every "
                 f"{self.store.retry_full_s:.0f} s; free space on that disk")
        if first:
            self.log.error("store_full", path=str(path), free_bytes=free, error=str(exc))
            self.live["store"] = {"alerts": [alert]}
            self.notifications.published("store", self.live["store"])
            self.notifier.status(f"paused: {alert}")
        if not self.ready.is_set():  # a start on a full disk waits instead of timing out
            self.notifier.extend_timeout(self.store.retry_full_s * 3)

    def _store_writable(self) -> None:
        self.live.pop("store", None)
        self.notifications.published("store", {})
        self.log.info("store_writable")
        self.notifier.status("running")

    def _on_publish(self, stage: str, status: Mapping[str, Any]) -> None:
        self.live[stage] = dict(status)
        self.notifications.published(stage, status)

    def _on_outcome(self, stage: str, event: str, video_id: str, kind: str | None) -> None:
        self.notifications.outcome(event)  # the last video done or failed: queue drained
        if self.on_outcome is not None:
            self.on_outcome(stage, event, video_id, kind)

    async def _reaper(self, store: Store) -> None:
        """Return expired leases of dead runs. The leases of this process's live runs are
        renewed first, under the claims lock: after a suspend (SIGSTOP, a laptop lid, a
        paused VM) every lease looks expired, and reaping our own live work would start it a
        second time beside the run that is still going."""
        while True:
            await self.clock.sleep(self.settings.daemon.reap_interval_s)
            async with self.claims:  # no claim is between the store and its lease record
                now = self.clock.now()
                live = [lease for w in self.workers for lease in w.live_leases()]
                until = now + self.settings.daemon.lease_s

                if live:
                    await store.renew_many(live, self.owner, until)
                n = await store.reap(now)
            if n:
                self.log.warning("leases_reaped", count=n)
                if self.workers:
                    self.workers[0].wakeups.all()
            if isinstance(store, PostgresStore):
                await self._heartbeat(store)
                if not store.shared_files:
                    lost = await store.requeue_lost_audio(now, self.host_silent_s)
                    if lost:
                        self.log.warning("audio_lost", count=len(lost), video_ids=lost[:20])
                        self.wakeups.all()

    @property
    def host_silent_s(self) -> float:
        """A host whose heartbeat is older than this is taken for gone (its audio is
        downloaded again elsewhere; `status` says it is silent)."""
        return max(self.settings.store.host_silent_s, 3 * self.settings.daemon.reap_interval_s)

    async def _heartbeat(self, store: PostgresStore) -> None:
        """This host's line in `status --hosts`: who, since when, what runs here."""
        await store.heartbeat(self.host_id, {
            "pid": os.getpid(), "owner": self.owner, "started_at": self.started_at,
            "stages": {w.stage.name: {"running": len(w.inflight), "slots": w.concurrency,
                                      "completed": w.completed} for w in self.workers},
            "silent_after_s": self.host_silent_s, "shared_files": store.shared_files})

    def _heard(self, state: str) -> None:
        """A NOTIFY from the store: work reached `state` (on any host)."""
        if state == "*":
            self.wakeups.all()
            return
        with contextlib.suppress(ValueError):
            self.wakeups.state_reached(state)

    async def _watchdog(self) -> None:
        interval = (self.notifier.watchdog_s or 30.0) / 2
        while True:
            self.notifier.watchdog()
            await self.clock.sleep(interval)


def run(settings: Settings, environ: Mapping[str, str] | None = None) -> int:
    """Entry point for `ytpiped run` (the only asyncio.run of the daemon)."""
    try:
        return asyncio.run(Daemon(settings, environ=environ).serve())
    except DataDirLocked as exc:
        logs.get("ytpiped.daemon").error("data_dir_locked", error=str(exc))
        print(f"error: {exc}", flush=True)
        return EXIT_LOCKED
    except ConfigError as exc:
        logs.get("ytpiped.daemon").error("daemon_config_error", error=str(exc))
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
