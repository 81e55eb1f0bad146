"""Cookies: yt-dlp rewrites the cookie file it is given, so every session gets a private
copy (mode 0600); the values are registered as secrets so no log line shows them.

A copy is locked (flock) while its session uses it. A process killed with -9 cannot
delete its copy, but the kernel drops its lock, so `remove_stale_copies` at start-up
tells a dead session's copy from one in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from pathlib import Path

from ytpiped import logs

KEY = "download.cookies_file"
COPY_PREFIX, COPY_SUFFIX = ".cookies-", ".txt"


class CookieError(Exception):
    """The configured cookie file is missing or unreadable (the message names the key and
    the path, never the contents)."""


def load_values(text: str) -> list[str]:
    """Cookie values of a Netscape cookies.txt (7 tab-separated fields)."""
    values = []
    for line in text.splitlines():
        if not line.strip() or (line.startswith("#") and not line.startswith("#HttpOnly_")):
            continue
        fields = line.split("\t")
        if len(fields) >= 7:
            values.append(fields[6].strip())
    return values


def _error(src: Path, exc: OSError) -> CookieError:
    if isinstance(exc, FileNotFoundError):
        return CookieError(f"key '{KEY}': {src} does not exist; downloads are paused until "
                           "it is back (export cookies.txt from a logged-in browser to that "
                           "path)")
    why = exc.strerror or type(exc).__name__
    return CookieError(f"key '{KEY}': cannot read {src} ({why}); downloads are paused until "
                       "it can be read (check the path and its permissions)")


def problem(source: str | Path) -> str | None:
    """Why the cookie file cannot be used right now, or None when it can be read."""
    src = Path(source).expanduser()
    try:
        with src.open("rb"):  # a directory raises IsADirectoryError
            pass
    except OSError as exc:
        return str(_error(src, exc))
    return None


class CookieCopy:
    """A private 0600 copy of the cookie file, locked while in use. `close()` deletes it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # releases the lock
            self._fd = None

    def __enter__(self) -> CookieCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def private_copy(source: str | Path, directory: Path) -> CookieCopy:
    """Copy `source` to a locked 0600 temp file in `directory` and register its values as
    secrets. The caller closes the copy (deleting it) when its yt-dlp session ends."""
    src = Path(source).expanduser()
    try:
        data = src.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _error(src, exc) from None
    for value in load_values(data):
        logs.register_secret(value)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=COPY_PREFIX, suffix=COPY_SUFFIX)
    copy = CookieCopy(Path(name), fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, 0o600)
        view = memoryview(data.encode("utf-8"))
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        copy.close()
        raise
    return copy


def remove_stale_copies(directory: Path) -> int:
    """Delete the copies no live session holds (left by a killed process) -> how many.
    A copy whose lock is held, by this process or another, is in use and stays."""
    removed = 0
    if not directory.is_dir():
        return 0
    for path in directory.glob(f"{COPY_PREFIX}*{COPY_SUFFIX}"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
        os.close(fd)
    return removed


def too_open(source: str | Path) -> bool:
    """True when the cookie file is readable by group or others."""
    mode = Path(source).expanduser().stat().st_mode
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))
