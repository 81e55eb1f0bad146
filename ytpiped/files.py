"""Atomic output files: a temp file in the same directory, fsync, rename. Readers never
see half a file; a crash leaves at most a `.NAME.*.tmp` that `clean_temp_files` removes
at the next start.

Permissions: one policy for everything created under the data dir, the process umask
(`daemon.umask`, applied by `apply_umask` at start): files 0666 and folders 0777 minus
those bits. Temp files (0600 from mkstemp) get the policy's mode before they are renamed."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ytpiped import paths

OUTPUT_DIRS = paths.OUTPUT_DIRS
PRIVATE_DIRS = (paths.PRIVATE,)  # owner-only whatever the umask (cookie copies)


def _read_umask() -> int:
    mask = os.umask(0o077)  # at import, before any thread exists
    os.umask(mask)
    return mask


_umask = _read_umask()


def apply_umask(mask: int) -> None:
    """Make `mask` the process umask and the policy of the files written here."""
    global _umask
    os.umask(mask)
    _umask = mask


def file_mode() -> int:
    return 0o666 & ~_umask


def tighten(data_dir: Path) -> int:
    """Take away the bits the policy forbids from the data dir, its folders and the
    database files an earlier version (or a looser umask) created; never adds bits.
    Returns how many paths changed."""
    changed = 0
    found = [data_dir, *(p for p in data_dir.iterdir() if p.is_dir() or p.suffix == ".db"
                         or p.name.startswith("ytpiped.db"))] if data_dir.is_dir() else []
    for p in found:
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        forbid = 0o077 if p.name in PRIVATE_DIRS else _umask
        if (st.st_mode & 0o777) & forbid:
            os.chmod(p, st.st_mode & 0o777 & ~forbid)
            changed += 1
    return changed


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
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
