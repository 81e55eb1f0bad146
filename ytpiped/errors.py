"""Exceptions that carry a decision: stages raise these, the worker persists the outcome."""

from __future__ import annotations

import errno

#: exit codes of every command (README: Exit codes)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3

#: how long a stage waits after "no space left on device" before it tries that video again
DISK_FULL_PAUSE_S = 300.0


class YtpipedError(Exception):
    """Base class of the project's own errors."""


class ConfigError(YtpipedError):
    """A configuration value is wrong; the message names the file and the key."""


class UsageError(YtpipedError):
    """A command was called wrongly (exit code 2)."""


class InvalidTransition(YtpipedError):
    """A state change the transition table forbids, or one whose guard matched no row.

    `lease_lost` is True when a fenced write found the row no longer held by its run
    (the lease expired and the row was reaped or claimed again)."""

    def __init__(self, message: str, *, lease_lost: bool = False) -> None:
        super().__init__(message)
        self.lease_lost = lease_lost


class DataDirLocked(YtpipedError):
    """Another daemon owns the data directory (exit code 3)."""


class StageError(YtpipedError):
    """Base of the decisions a stage can raise."""

    kind: str = "error"


class Retryable(StageError):
    """Try again later; spends an attempt. `defer` (seconds) overrides the backoff."""

    def __init__(self, message: str, *, kind: str = "error", defer: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.defer = defer


class Permanent(StageError):
    """Give up on this video now: it goes to `failed` with this kind."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Cooldown(StageError):
    """Put the video back without spending an attempt, not before `until` (epoch seconds)."""

    def __init__(self, message: str, *, kind: str, until: float) -> None:
        super().__init__(message)
        self.kind = kind
        self.until = until


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC or EDQUOT anywhere in the exception's cause/context chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
