"""structlog setup: JSON lines under systemd or when not on a TTY, a console renderer on
a TTY. Standard-library loggers (yt-dlp, aiohttp, faster-whisper) go through the same
processors. Secrets are masked by `redact` before anything is rendered."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"(cookie|token|password|secret|authorization)", re.I)
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
        if _SECRET_KEYS.search(key) and key != "cookies_file":
            event[key] = "[redacted]"
        elif isinstance(value, str) and _secret_values:
            event[key] = scrub(value)
    return event


def setup(*, json: bool | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger once, in cli/daemon only."""
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
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncio", "aiohttp.access", "httpx", "httpcore", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get(name: str = "ytpiped", **bind: Any) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger.bind(**bind) if bind else logger
