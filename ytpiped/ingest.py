"""`ytpiped add`: read URL lists, canonicalise, dedup, insert. All-or-nothing per call:
every input is read and checked before anything is written."""

from __future__ import annotations

import os
import select
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple, NoReturn

from ytpiped.errors import UsageError
from ytpiped.store.blocking import SyncDB
from ytpiped.urls import Invalid, Target, canonicalise


@dataclass(frozen=True)
class InvalidLine:
    source: str
    line: int
    text: str
    reason: str


@dataclass
class AddReport:
    added: int = 0
    duplicate: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return f"added {self.added}, duplicate {self.duplicate}, invalid {len(self.invalid)}"

    def to_json(self) -> dict[str, object]:
        return {"added": self.added, "duplicate": self.duplicate,
                "invalid": [{"source": i.source, "line": i.line, "text": i.text,
                             "reason": i.reason} for i in self.invalid],
                "by_kind": self.by_kind}


#: a line longer than this (bytes) is one invalid line
MAX_LINE = 8 * 1024
#: a line still going past this has no business in a URL list (/dev/zero, a binary file):
#: the whole input is refused
MAX_RUN = 1024 * 1024
#: bytes per read
BLOCK = 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_SHOWN = 200  # characters of an invalid line kept for the report


class Source(NamedTuple):
    """One input read whole: its lines (an over-long line is "" here, kept in `too_long`
    with its start, so that line numbers stay right)."""

    name: str
    lines: list[str]
    too_long: tuple[tuple[int, str], ...] = ()


class _Splitter:
    """Bytes in blocks -> UTF-8 lines, holding at most MAX_LINE bytes of an unfinished one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.too_long: list[tuple[int, str]] = []
        self.pending = b""
        self.started = False  # a leading BOM is dropped once the first bytes are in
        self.long_start: bytes | None = None  # the start of a line being skipped
        self.long_size = 0

    def feed(self, block: bytes) -> None:
        data = self.pending + block if self.pending else block
        self.pending = b""
        if not self.started:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self.pending = data
                return
            self.started = True
            if data.startswith(_BOM):
                data = data[len(_BOM):]
        if self.long_start is not None:
            cut = data.find(b"\n")
            self._grow_long(len(data) if cut < 0 else cut)
            if cut < 0:
                return
            self._end_long()
            data = data[cut + 1:]
        cut = data.rfind(b"\n")
        if cut >= 0:
            self._complete(data[:cut])
            data = data[cut + 1:]
        if len(data) > MAX_LINE:
            self.long_start, self.long_size = data[:_SHOWN * 4], 0
            self._grow_long(len(data))
        else:
            self.pending = data

    def finish(self) -> Source:
        if self.long_start is not None:
            self._end_long()
        elif self.pending:
            self._complete(self.pending)
        return Source(self.name, self.lines, tuple(self.too_long))

    def _grow_long(self, n: int) -> None:
        self.long_size += n
        if self.long_size > MAX_RUN:
            self._refuse(len(self.lines) + 1)

    def _refuse(self, line: int) -> NoReturn:
        raise UsageError(f"{self.name}: line {line} runs past {MAX_RUN // 2**20} MiB without a "
                         "line break: not a list of URLs (nothing added)")

    def _end_long(self) -> None:
        assert self.long_start is not None
        start = self.long_start.decode("utf-8", "replace")[:_SHOWN]  # as _complete keeps
        self.too_long.append((len(self.lines) + 1, start))
        self.lines.append("")
        self.long_start = None

    def _complete(self, chunk: bytes) -> None:
        """Whole lines separated by b"\\n" (the CR of a CRLF stays: `canonicalise` strips
        it with the line's other surrounding whitespace)."""
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            at = len(self.lines) + chunk[:exc.start].count(b"\n") + 1
            raise UsageError(f"{self.name}: not UTF-8 text (invalid byte at line {at}); save "
                             "the file as UTF-8 (nothing added)") from None
        lines = text.split("\n")
        if max(map(len, lines)) > MAX_LINE // 4:  # only then can a line pass MAX_LINE bytes
            for i, line in enumerate(lines):
                size = len(line.encode()) if len(line) > MAX_LINE // 4 else 0
                if size > MAX_RUN:
                    self._refuse(len(self.lines) + i + 1)
                if size > MAX_LINE:
                    self.too_long.append((len(self.lines) + i + 1, line[:_SHOWN]))
                    lines[i] = ""
        self.lines.extend(lines)


def _blocks(fd: int, name: str, timeout_s: float | None) -> Iterator[bytes]:
    """Read `fd` to its end; with `timeout_s`, a wait for data longer than that is an error."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    wait_ms = None if timeout_s is None else max(1, round(timeout_s * 1000))
    while True:
        if wait_ms is not None and not poller.poll(wait_ms):
            raise UsageError(f"{name}: no input for {timeout_s:g} s (a pipe or FIFO with no "
                             "writer?); nothing added. A slow producer needs a larger "
                             "add.read_timeout_s")
        try:
            block = os.read(fd, BLOCK)
        except BlockingIOError:
            continue
        except OSError as exc:
            raise UsageError(f"{name}: cannot read ({exc.strerror})") from None
        if not block:
            return
        yield block


def _waits(fd: int, timeout_s: float) -> float | None:
    """A regular file or a terminal is read as it comes; a pipe, FIFO, socket or device
    has `timeout_s` to yield each block."""
    mode = os.fstat(fd).st_mode
    return None if stat.S_ISREG(mode) or os.isatty(fd) else timeout_s


def read_source(arg: str, stdin: BinaryIO | None = None, *,
                timeout_s: float = 10.0) -> Source:
    """A file path or '-' (stdin) -> its lines, read with bounds: a line over MAX_LINE bytes
    is reported invalid, a line past MAX_RUN or input that is not UTF-8 refuses the whole
    input, and a pipe, FIFO or device that yields nothing for `timeout_s` is an error.
    Raises UsageError with a clear message."""
    splitter = _Splitter("<stdin>" if arg == "-" else arg)
    if arg == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        try:
            fd = stream.fileno()
        except (OSError, ValueError):  # an in-memory stream
            for block in iter(lambda: stream.read(BLOCK), b""):
                splitter.feed(block)
            return splitter.finish()
        for block in _blocks(fd, splitter.name, _waits(fd, timeout_s)):
            splitter.feed(block)
        return splitter.finish()
    try:
        fd = os.open(arg, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO's open must not block
    except FileNotFoundError:
        raise UsageError(f"{arg}: no such file") from None
    except PermissionError:
        raise UsageError(f"{arg}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{arg}: cannot open ({exc.strerror})") from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise UsageError(f"{arg}: is a directory; give a text file with one URL per line")
        os.set_blocking(fd, True)
        for block in _blocks(fd, arg, _waits(fd, timeout_s)):
            splitter.feed(block)
    finally:
        os.close(fd)
    return splitter.finish()


def looks_like_url(arg: str) -> bool:
    return "://" in arg or arg.startswith(("www.", "youtu", "m.youtube")) or (
        len(arg) == 11 and not Path(arg).exists())


def collect(sources: Iterable[tuple[str, Sequence[str]] | Source]
            ) -> tuple[list[Target], AddReport]:
    """Canonicalise every line; dedup within the input; invalid lines are reported."""
    report = AddReport()
    seen: set[str] = set()
    targets: list[Target] = []
    for source in sources:
        name, lines = source[0], source[1]
        first = len(report.invalid)
        if isinstance(source, Source) and source.too_long:
            report.invalid.extend(InvalidLine(name, n, text.strip()[:_SHOWN],
                                              f"line longer than {MAX_LINE // 1024} KiB")
                                  for n, text in source.too_long)
        for n, text in enumerate(lines, 1):
            parsed = canonicalise(text)
            if parsed is None:
                continue
            if isinstance(parsed, Invalid):
                report.invalid.append(InvalidLine(name, n, text.strip()[:200], parsed.reason))
                continue
            if parsed.id in seen:
                report.duplicate += 1
                continue
            seen.add(parsed.id)
            targets.append(parsed)
        if isinstance(source, Source) and source.too_long:
            report.invalid[first:] = sorted(report.invalid[first:], key=lambda i: i.line)
    return targets, report


def add(store: SyncDB, targets: Sequence[Target], report: AddReport, now: float,
        priority: int = 0) -> AddReport:
    added, dup = store.add_videos(targets, now, priority=priority)
    report.added += added
    report.duplicate += dup
    for t in targets:
        report.by_kind[t.kind] = report.by_kind.get(t.kind, 0) + 1
    return report
