"""URLs on hosts that are not YouTube (a podcast feed's entries, or added directly) do not
wait for YouTube's pacing,
its rate-limit cooldown or its breaker; each such host keeps its own pause
(download.other_hosts_delay_s) between its downloads. Driven through the real StageWorker
(gate -> claim -> run) on the in-memory store and a fake clock."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from ytpiped import config
from ytpiped.download import ytdlp
from ytpiped.download.pacing import OtherHosts, url_host
from ytpiped.stages.download import DownloadStage
from ytpiped.store import NewVideo
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.memory_store import MemoryStore
from ytpiped.worker import StageWorker, Wakeups

YOUTUBE_DELAY = 10**6  # a pause that, waited for, would take the test past every bound
OTHER_DELAY = 50.0
FEED = "url-feedfeedfeedfeed"


class Fetcher:
    """Notes when each video's download started; YouTube's answers 429 when told to."""

    def __init__(self, clock: FakeClock, youtube_429: bool) -> None:
        self.clock, self.youtube_429 = clock, youtube_429
        self.starts: dict[str, float] = {}

    def __call__(self, url: str, audio: Path, vid: str, *args: Any) -> ytdlp.Fetched:
        self.starts[vid] = self.clock.monotonic()
        if self.youtube_429 and "youtube.com" in url:
            raise ytdlp.DownloadFailed("ERROR: HTTP Error 429: Too Many Requests")
        audio.mkdir(parents=True, exist_ok=True)
        (audio / f"{vid}.m4a").write_bytes(b"x")
        return ytdlp.Fetched(audio / f"{vid}.m4a", "t", "c", None, 1.0, 1)


async def states(store: MemoryStore, *ids: str) -> list[str]:
    return [row.state if (row := await store.get(v)) else "?" for v in ids]


@pytest.mark.parametrize("parent", [FEED, None], ids=["feed_entries", "added_directly"])
@pytest.mark.parametrize("youtube_block", ["delay", "rate_limit"])
async def test_other_hosts_download_while_youtube_waits_each_host_paced_on_its_own(
        tmp_path: Path, youtube_block: str, parent: str | None) -> None:
    long = [YOUTUBE_DELAY, YOUTUBE_DELAY]
    settings = config.load(flags={
        "data_dir": str(tmp_path), "download.delay_buffer_build_s": long,
        "download.delay_steady_s": long, "download.delay_catch_up_s": long,
        "download.rate_limit_cooldown_s": YOUTUBE_DELAY,
        "download.other_hosts_delay_s": [OTHER_DELAY, OTHER_DELAY]})
    store, clock = MemoryStore(), FakeClock()
    fetcher = Fetcher(clock, youtube_429=youtube_block == "rate_limit")
    stage = DownloadStage(fetcher=fetcher, rng=random.Random(1))
    yt = [f"youtubevid{i}" for i in range(2)]
    await store.add_videos([NewVideo(v, f"https://www.youtube.com/watch?v={v}", "video")
                            for v in yt], now=clock.now())
    worker = StageWorker(stage, store, settings, clock, "host:1", Wakeups())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def settle(done: Any) -> None:
        for _ in range(10_000):
            if await done():
                return
            for _ in range(20):
                await asyncio.sleep(0)
            deadline = clock.next_deadline()
            if deadline is not None and deadline < YOUTUBE_DELAY / 2:
                clock.advance(deadline - clock.monotonic())
        raise AssertionError(f"never got there: {await states(store, *yt, *episodes)}")

    episodes = ["episode0001", "episode0003", "episode0002"]
    await settle(lambda: _started(fetcher, yt[0]))  # YouTube's pause (or cooldown) begins
    # episodes on two hosts (a feed's, or added with `add`): a1 and a2 share a host, b1
    # has one of its own
    await store.add_videos([
        NewVideo(episodes[0], "https://feeds.example.org/a1.mp3", "generic"),
        NewVideo(episodes[1], "https://cdn.example.net/b1.mp3", "generic"),
        NewVideo(episodes[2], "https://feeds.example.org/a2.mp3", "generic")],
        now=clock.now(), parent_id=parent)
    worker.wakeups.events["download"].set()

    async def episodes_downloaded() -> bool:
        return set(await states(store, *episodes)) == {"downloaded"}

    await settle(episodes_downloaded)
    assert await states(store, yt[1]) == ["queued"]  # still YouTube's turn to wait for
    a1, _, a2 = (fetcher.starts[e] for e in episodes)
    assert a2 - a1 >= OTHER_DELAY  # one host: its own pause between its downloads
    stop.set()
    await task
    await worker.drain(0)


async def _started(fetcher: Fetcher, vid: str) -> bool:
    return vid in fetcher.starts


def test_each_other_host_has_its_own_pause() -> None:
    settings = config.load(flags={"download.other_hosts_delay_s": [OTHER_DELAY, OTHER_DELAY]})
    hosts = OtherHosts(settings.download, random.Random(1))
    a, b = "feeds.example.org", "cdn.example.net"
    assert hosts.next_at(0.0, a) == 0.0  # a first download waits for nothing
    hosts.started(0.0, a)
    assert hosts.next_at(0.0, a) > 0.0  # no two downloads from one host at once
    assert hosts.next_at(0.0, b) == 0.0
    hosts.finished(10.0, a)
    assert hosts.next_at(10.0, a) == 10.0 + OTHER_DELAY
    assert hosts.next_at(10.0, b) == 10.0  # another host does not wait for a's pause
    assert url_host("https://Feeds.Example.org:8080/a.mp3") == a
