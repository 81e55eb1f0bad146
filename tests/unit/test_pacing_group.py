"""Hosts in one pacing group take turns: the delay holds between downloads of different
hosts, a rate limit met by one pauses all, and downloads that other groups make do not
count (download.pacing_group)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

from ytpiped import config
from ytpiped.download import ytdlp
from ytpiped.errors import Cooldown
from ytpiped.stages.base import Item
from ytpiped.stages.download import DownloadStage
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.context import FakeContext

DELAY = (30.0, 60.0)


def settings(tmp_path: Path, host: str, group: str) -> config.Settings:
    return config.load(flags={"data_dir": str(tmp_path / host), "daemon.host_id": host,
                              "download.pacing_group": group,
                              "download.delay_buffer_build_s": list(DELAY),
                              "download.delay_steady_s": list(DELAY),
                              "download.delay_catch_up_s": list(DELAY)})


class Host:
    """One daemon's download stage, with a fetcher that notes when each download ran."""

    def __init__(self, tmp_path: Path, name: str, group: str, clock: FakeClock,
                 shared: dict[str, Any], starts: list[tuple[float, str]],
                 fail: str | None = None) -> None:
        self.ctx = FakeContext(settings(tmp_path, name, group), clock=clock,
                               counts={"queued": 10}, owner=f"{name}:1", shared=shared)
        self.name, self.clock, self.starts, self.fail = name, clock, starts, fail
        self.stage = DownloadStage(fetcher=self.fetch)

    def fetch(self, url: str, audio: Path, vid: str, *args: Any) -> ytdlp.Fetched:
        self.starts.append((self.clock.now(), self.name))
        if self.fail:
            raise ytdlp.DownloadFailed(self.fail)
        audio.mkdir(parents=True, exist_ok=True)
        (audio / f"{vid}.m4a").write_bytes(b"x")
        return ytdlp.Fetched(audio / f"{vid}.m4a", "t", "c", None, 1.0, 1)

    async def download(self, n: int) -> None:
        await self.stage.start(self.ctx)
        for i in range(n):
            await self.stage.gate(self.ctx)
            item = Item(id=f"{self.name}{i:07d}",  # a YouTube video: the group's pacing
                        url=f"https://www.youtube.com/watch?v={self.name}{i:07d}",
                        kind="video", state="downloading", attempts=0)
            with contextlib.suppress(Cooldown):  # the rate-limited host's download
                await self.stage.run(item, self.ctx)


async def run_hosts(tmp_path: Path, groups: list[str]) -> tuple[list[str], list[float]]:
    """-> (the host of each download, every download's start as its group recorded it)."""
    clock, shared, starts = FakeClock(), {}, []
    hosts = [Host(tmp_path, f"host{i}", g, clock, shared, starts)
             for i, g in enumerate(groups)]
    task = asyncio.ensure_future(asyncio.gather(*(h.download(4) for h in hosts)))
    await clock.drive(task)
    await task  # its errors, if any
    recorded = sorted(t for g in set(groups) for t in shared[f"pacing:{g}"]["pacer"]["recent"])
    return [h for _, h in starts], recorded


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_two_hosts_in_one_group_keep_the_delay_between_them(tmp_path: Path) -> None:
    hosts, starts = await run_hosts(tmp_path, ["office", "office"])
    assert len(hosts) == len(starts) == 8 and set(hosts) == {"host0", "host1"}
    assert min(gaps(starts)) >= DELAY[0]  # downloads are instant: start-to-start is the pause


async def test_hosts_in_different_groups_do_not_wait_for_each_other(tmp_path: Path) -> None:
    hosts, starts = await run_hosts(tmp_path, ["office", "home"])
    assert len(hosts) == len(starts) == 8
    assert min(gaps(starts)) < DELAY[0]  # two budgets: their downloads overlap in time


async def test_a_rate_limit_met_by_one_host_pauses_the_group(tmp_path: Path) -> None:
    clock, shared, starts = FakeClock(), {}, []
    limited = Host(tmp_path, "hostA", "office", clock, shared, starts,
                   fail="HTTP Error 429: Too Many Requests")
    other = Host(tmp_path, "hostB", "office", clock, shared, starts)
    await clock.drive(asyncio.ensure_future(limited.download(1)))
    hit = clock.now()
    await clock.drive(asyncio.ensure_future(other.download(1)))
    cooldown = limited.ctx.settings.download.rate_limit_cooldown_s
    assert [h for _, h in starts] == ["hostA", "hostB"]
    assert starts[1][0] >= hit + cooldown  # hostB waited out hostA's cooldown
