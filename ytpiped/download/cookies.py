"""Cookies: yt-dlp rewrites the cookie file it is given, so every session gets a private
copy (mode 0600); the values are registered as secrets so no log line shows them."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ytpiped import logs


class CookieError(Exception):
    pass


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


def private_copy(source: str | Path, directory: Path) -> Path:
    """Copy `source` to a 0600 temp file in `directory` and register its values as secrets.
    The caller deletes the copy when its yt-dlp session ends."""
    src = Path(source).expanduser()
    try:
        data = src.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise CookieError(f"key 'download.cookies_file': {src} does not exist") from None
    except OSError as exc:
        raise CookieError(f"key 'download.cookies_file': cannot read {src}: "
                          f"{exc.strerror}") from None
    for value in load_values(data):
        logs.register_secret(value)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".cookies-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(data)
    os.chmod(name, 0o600)
    return Path(name)


def too_open(source: str | Path) -> bool:
    """True when the cookie file is readable by group or others."""
    mode = Path(source).expanduser().stat().st_mode
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))
