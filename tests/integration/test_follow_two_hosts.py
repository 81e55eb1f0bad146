"""Two hosts sharing one store never list the same followed source at once: the check is
taken under the store's row lock on the source's entry (Store.update_state), so one
listing request is made per interval, whichever host makes it. Two stores on one SQLite
file, and two on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from ytpiped import config
from ytpiped.download.follows import Follow
from ytpiped.stages.download import DownloadStage
from ytpiped.store import SqliteStore, Store
from ytpiped.store.postgres import PostgresStore
from ytpiped.testing.clock import FakeClock
from ytpiped.worker import StageWorker, Wakeups, WorkerContext

KEY = "follow:channel:@fakechan"
URL = "https://www.youtube.com/@fakechan/videos"


class Lister:
    """yt-dlp's newest-entries listing: counts the requests; the first one is held until
    `release` is set (a slow listing, while the other host looks)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, url: str, *args: Any) -> tuple[str | None, list[str]]:
        self.calls.append(url)
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(60), "the test never released the first listing"
        return "Channel", ["https://www.youtube.com/watch?v=fakeupload1"]


def host(store: Store, tmp_path: Path, name: str, clock: FakeClock, lister: Lister
         ) -> tuple[DownloadStage, WorkerContext]:
    settings = config.load(flags={"data_dir": str(tmp_path / name), "daemon.host_id": name,
                                  "sources.follow_interval_h": 1.0})
    stage = DownloadStage(newest=lister)
    worker = StageWorker(stage, store, settings, clock, f"{name}:1", Wakeups())
    return stage, WorkerContext(worker, None, worker.log)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_two_hosts_checking_one_followed_source_make_one_listing(
        tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> None:
    stores: list[Store]
    if backend == "sqlite":
        stores = [SqliteStore(tmp_path / "shared.db", now=0.0) for _ in range(2)]
    else:
        url = request.getfixturevalue("pg_url")
        stores = [PostgresStore(url, now=0.0, host=f"host{i}") for i in range(2)]
    for s in stores:
        await s.open()
    clock, lister = FakeClock(), Lister()
    try:
        await stores[0].set_state(KEY, Follow(id="channel:@fakechan", url=URL,
                                              kind="channel", added_at=0.0).to_json(), 0.0)
        (a, actx), (b, bctx) = (host(s, tmp_path, f"host{i}", clock, lister)
                                for i, s in enumerate(stores))
        first = asyncio.ensure_future(a._check_follow(actx, clock.now(), youtube=True))
        assert await asyncio.to_thread(lister.entered.wait, 60)  # host0 is listing it
        # host1 finds the source due as well, at the same moment
        assert not await b._check_follow(bctx, clock.now(), youtube=True)
        lister.release.set()
        assert await first
        assert lister.calls == [URL]  # one listing request, not one per host
        got = await stores[1].get_state(KEY)
        assert got is not None
        state = Follow.from_json(got[0])
        assert (state.checks, state.found) == (1, 1)
        assert state.next_check_at == clock.now() + 3600
        clock.advance(3600)  # the next interval: one host lists it again, the other not
        checks = await asyncio.gather(a._check_follow(actx, clock.now(), youtube=True),
                                      b._check_follow(bctx, clock.now(), youtube=True))
        assert sorted(checks) == [False, True] and len(lister.calls) == 2
    finally:
        lister.release.set()
        for s in stores:
            await s.close()
