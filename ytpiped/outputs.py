"""What a stage leaves for the next ones, kept in a store that several hosts share.

On one machine the data dir holds every stage's results. On a PostgreSQL store without
`store.shared_files`, a video's transcript is written on the host that transcribed it,
yet any host may mine it. So there, every result file a later stage reads (the transcript,
the mined claims, the evaluated claims) is also saved in the store when its stage
completes — as a part of kind `output:KIND`, under the run's fencing token, before the
completion — and a host about to run a stage whose input file it lacks writes it from the
store first. `ytpiped export` does the same for every finished video.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ytpiped.files import atomic_write_json
from ytpiped.paths import DataDir
from ytpiped.store.base import Store

#: output kind -> its file in a data dir
FILES: dict[str, Callable[[DataDir, str], Path]] = {
    "transcript": lambda d, vid: d.transcript(vid),
    "mined": lambda d, vid: d.mined(vid),
    "mining": lambda d, vid: d.mining(vid),
}
#: stage -> the outputs it leaves
MADE_BY = {"transcribe": ("transcript",), "mine": ("mined",), "evaluate": ("mining",)}
#: stage -> the outputs it reads
NEEDED_BY = {"mine": ("transcript",), "evaluate": ("transcript", "mined")}
PART = "output:"


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


async def keep(store: Store, data_dir: Path, video_id: str, stage: str, now: float,
               token: int | None) -> list[str]:
    """Save the outputs `stage` wrote for `video_id` in the store (-> their kinds); a run
    that lost its lease raises InvalidTransition(lease_lost=True) and saves nothing."""
    kept = []
    for kind in MADE_BY.get(stage, ()):
        path = FILES[kind](DataDir(data_dir), video_id)
        try:
            doc = await asyncio.to_thread(_read, path)
        except FileNotFoundError:
            continue
        await store.save_part(video_id, PART + kind, 0, doc, now, token=token)
        kept.append(kind)
    return kept


async def fetch(store: Store, data_dir: Path, video_id: str, kinds: tuple[str, ...]
                ) -> list[str]:
    """Write the outputs of `kinds` that this data dir lacks from the store (-> the kinds
    written); what the store does not have either is left to the stage to report."""
    written = []
    for kind in kinds:
        path = FILES[kind](DataDir(data_dir), video_id)
        if await asyncio.to_thread(path.exists):
            continue
        doc = (await store.load_parts(video_id, PART + kind)).get(0)
        if doc is None:
            continue
        await asyncio.to_thread(atomic_write_json, path, doc)
        written.append(kind)
    return written


async def fetch_finished(store: Store, data_dir: Path) -> int:
    """Write every finished video's transcript and claims this data dir lacks from the
    store (before an export on one of several hosts) -> files written."""
    written = 0
    for row in await store.videos(state="done", limit=10_000_000):
        written += len(await fetch(store, data_dir, row.id, ("transcript", "mining")))
    return written
