"""A video's transcript and mining result, read from the data dir for the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ytpiped.paths import DataDir
from ytpiped.store.model import VideoRow


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def video_files(data_dir: Path, row: VideoRow) -> tuple[dict[str, Any] | None,
                                                        dict[str, Any] | None]:
    """(transcript JSON, mining result): the evaluated result, else the claims before
    evaluation; None where there is none (yet)."""
    d = DataDir(data_dir)
    mining = read_json(d.mining(row.id)) or read_json(d.mined(row.id))
    return read_json(d.transcript(row.id, "json")), mining
