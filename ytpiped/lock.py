"""The data-dir lock: one daemon per data directory (a second one exits with code 3).
Kept apart from the daemon so `status` can ask who holds it without importing aiohttp."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

from ytpiped import paths
from ytpiped.errors import DataDirLocked, is_disk_full

LOCK_NAME = paths.LOCK


def acquire_lock(data_dir: Path) -> IO[str]:
    """Hold an exclusive flock on DATA/ytpiped.lock for the daemon's lifetime."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = (data_dir / LOCK_NAME).open("a+")
    for attempt in range(20):  # `status` probes the lock with a brief shared lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt < 19:
                time.sleep(0.025)
                continue
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirLocked(f"another ytpiped daemon (pid {holder}) already owns "
                                f"{data_dir}; stop it first or use another --data-dir") from None
    fh.truncate(0)
    try:  # the pid is for `status` and the message above; the flock is the lock
        os.pwrite(fh.fileno(), str(os.getpid()).encode(), 0)
    except OSError as exc:
        if not is_disk_full(exc):  # a full disk must not keep the daemon from starting
            raise
    return fh


def lock_holder(data_dir: Path) -> int | None:
    """pid of the daemon holding the data dir, or None (for `status`)."""
    path = data_dir / LOCK_NAME
    if not path.exists():
        return None
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None
