"""structlog setup: JSON lines under systemd or when not on a TTY, a console renderer on
a TTY. Standard-library loggers (yt-dlp, aiohttp, faster-whisper) go through the same
processors. Secrets are masked by `redact` before anything is rendered.

When the stream is systemd's journal (`$JOURNAL_STREAM` names its device and inode), each
line starts with its syslog priority, `<3>` for errors, `<4>` warnings, `<6>` info, `<7>`
debug: journald takes it as the entry's priority, so `journalctl -p err -u ytpiped` finds
the errors."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"(cookie|token|password|secret|authorization)", re.I)
_COUNTS = re.compile(r"tokens", re.I)  # prompt_tokens, tokens_per_s: LLM token counts
_secret_values: set[str] = set()


def register_secret(value: str) -> None:
    """Never print this string (e.g. cookie values read from cookies_file)."""
    if len(value) >= 6:
        _secret_values.add(value)


def scrub(text: str) -> str:
    for value in _secret_values:
        if value in text:
            text = text.replace(value, "[redacted]")
    return text


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and key != "cookies_file" and not _COUNTS.search(key):
            event[key] = "[redacted]"
        elif isinstance(value, str) and _secret_values:
            event[key] = scrub(value)
    return event


#: syslog priorities (sd-daemon(3)) by the lowest stdlib level they cover
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))


def priority(levelno: int) -> int:
    """The syslog priority of a stdlib log level (debug and below: 7)."""
    return next((prio for lowest, prio in _PRIORITIES if levelno >= lowest), 7)


def is_journal(stream: TextIO, journal_stream: str | None) -> bool:
    """True when `stream` is the journal stream systemd named in $JOURNAL_STREAM
    ("DEVICE:INODE"); not when the unit sends stderr elsewhere."""
    if not journal_stream:
        return False
    try:
        dev, ino = (int(part) for part in journal_stream.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):  # io.UnsupportedOperation is an OSError
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class JournalFormatter(logging.Formatter):
    """Prefixes every line of a record with its syslog priority, `<N>`."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def setup(*, json: bool | None = None, level: str = "info", stream: TextIO | None = None,
          journal_stream: str | None = None) -> None:
    """Configure structlog and the stdlib root logger once, in cli/daemon only.
    `journal_stream`: the value of $JOURNAL_STREAM (the caller reads the environment)."""
    out = stream or sys.stderr
    if json is None:
        json = not out.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    formatter: logging.Formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer])
    if is_journal(out, journal_stream):
        formatter = JournalFormatter(formatter)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncio", "aiohttp.access", "httpx", "httpcore", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get(name: str = "ytpiped", **bind: Any) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger.bind(**bind) if bind else logger
