"""Atomic output files: a temp file in the same directory, fsync, rename. Readers never
see half a file; a crash leaves at most a `.NAME.*.tmp` that `clean_temp_files` removes
at the next start."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

OUTPUT_DIRS = ("transcripts", "mining")


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1))


def clean_temp_files(data_dir: Path) -> int:
    """Remove temp files a killed writer left in the output folders (call while holding
    the data-dir lock, when no writer can be active)."""
    removed = 0
    for name in OUTPUT_DIRS:
        folder = data_dir / name
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                removed += 1
    return removed
