"""Fake stages for tests of the worker and the daemon (no media, no models).

`fake_pipeline(settings, clock)` is a `daemon.stage_factory`: every stage sleeps
`delay_s` per item and can be told to fail items, all read from DATA/fake_stages.json:
{"delay_s": 0.05, "fail": {"<video_id>": MODE}, "stages": ["download", ...]}, MODE one of
permanent, retryable, crash, cooldown, disk_full, hang. When `DATA/fake_stages.started/`
exists, each stage touches `<stage>.<video_id>` there as it starts an item, so tests can
wait on real progress.
"""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path
from typing import Any

from ytpiped.clock import Clock
from ytpiped.config import Settings
from ytpiped.errors import Cooldown, Permanent, Retryable
from ytpiped.stages.base import Context, Item, Outcome, Stage, StageBase
from ytpiped.states import STAGE_NAMES


class FakeStage(StageBase):
    def __init__(self, name: str, *, delay_s: float = 0.0, fail: dict[str, str] | None = None,
                 concurrency: int = 1, started_dir: Path | None = None) -> None:
        self.name = name
        self.delay_s = delay_s
        self.fail = fail or {}
        self.concurrency = concurrency
        self.started_dir = started_dir
        self.seen: list[str] = []
        self.started: asyncio.Queue[str] = asyncio.Queue()  # test gate: ids as they start

    async def run(self, item: Item, ctx: Context) -> Outcome:
        self.seen.append(item.id)
        self.started.put_nowait(item.id)
        if self.started_dir is not None:
            (self.started_dir / f"{self.name}.{item.id}").touch()
        if self.delay_s:
            await ctx.clock.sleep(self.delay_s)
        mode = self.fail.get(item.id) or self.fail.get(f"{self.name}:{item.id}")
        if mode == "permanent":
            raise Permanent(f"fake permanent failure of {item.id}", kind="fake_permanent")
        if mode == "retryable":
            raise Retryable(f"fake transient failure of {item.id}", kind="fake_transient",
                            defer=0.0)
        if mode == "crash":
            raise RuntimeError(f"fake crash while processing {item.id}")
        if mode == "cooldown":
            raise Cooldown(f"fake rate limit on {item.id}", kind="rate_limited",
                           until=ctx.clock.now() + 3600)
        if mode == "disk_full":  # as a write of the stage's output would fail
            raise OSError(errno.ENOSPC, "No space left on device",
                          str(ctx.data_dir / f"{item.id}.out"))
        if mode == "hang":
            await asyncio.Event().wait()
        fields: dict[str, Any] = {}
        if self.name == "download":
            fields = {"title": f"title of {item.id}", "duration_s": 60.0, "size_bytes": 1000}
        return Outcome(fields=fields, info={self.name: {"done": True}})


def fake_pipeline(settings: Settings, clock: Clock) -> list[Stage]:
    data = settings.data_path
    cfg_file = data / "fake_stages.json"
    cfg: dict[str, Any] = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    started = data / "fake_stages.started"
    names = cfg.get("stages", list(STAGE_NAMES))
    return [FakeStage(n, delay_s=float(cfg.get("delay_s", 0.0)), fail=cfg.get("fail", {}),
                      concurrency=int(cfg.get("concurrency", 1)),
                      started_dir=started if started.is_dir() else None) for n in names]


def download_pipeline(settings: Settings, clock: Clock) -> list[Stage]:
    """The real download stage (yt-dlp, e.g. against the test media server) followed by
    fake stages for the rest of the pipeline: downloads decide, the rest just succeeds
    (after `delay_s` of DATA/fake_stages.json, as in fake_pipeline)."""
    from ytpiped.stages.download import DownloadStage

    fakes = [s for s in fake_pipeline(settings, clock) if s.name != "download"]
    return [DownloadStage(), *fakes]


def mining_pipeline(settings: Settings, clock: Clock) -> list[Stage]:
    """Only the real mine and evaluate stages (one shared LLM runtime): for runs that start
    from transcripts already in the data dir, e.g. against a real LLM server."""
    from ytpiped.mining.runner import Runtime
    from ytpiped.stages.evaluate import EvaluateStage
    from ytpiped.stages.mine import MineStage

    llm = Runtime.from_config(settings.mine, clock)
    return [MineStage(llm), EvaluateStage(llm)]
