"""`ytpiped add`: read URL lists, canonicalise, dedup, insert. All-or-nothing per call:
every input is read and checked before anything is written."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ytpiped.errors import UsageError
from ytpiped.store import Store
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


def read_source(arg: str, stdin: TextIO | None = None) -> tuple[str, list[str]]:
    """A file path or '-' -> (name, lines). Raises UsageError with a clear message."""
    if arg == "-":
        stream = stdin or sys.stdin
        try:
            return "<stdin>", stream.read().splitlines()
        except UnicodeDecodeError as exc:
            raise UsageError(f"<stdin>: not UTF-8 text ({exc.reason} at byte {exc.start})") \
                from None
    path = Path(arg)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{arg}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{arg}: is a directory; give a text file with one URL per line") \
            from None
    except PermissionError:
        raise UsageError(f"{arg}: permission denied") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{arg}: not UTF-8 text (invalid byte at line {line}); "
                         "save the file as UTF-8") from None
    return arg, text.splitlines()


def looks_like_url(arg: str) -> bool:
    return "://" in arg or arg.startswith(("www.", "youtu", "m.youtube")) or (
        len(arg) == 11 and not Path(arg).exists())


def collect(sources: Iterable[tuple[str, Sequence[str]]]) -> tuple[list[Target], AddReport]:
    """Canonicalise every line; dedup within the input; invalid lines are reported."""
    report = AddReport()
    seen: set[str] = set()
    targets: list[Target] = []
    for name, lines in sources:
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
    return targets, report


def add(store: Store, targets: Sequence[Target], report: AddReport, now: float) -> AddReport:
    added, dup = store.add_videos(targets, now)
    report.added += added
    report.duplicate += dup
    for t in targets:
        report.by_kind[t.kind] = report.by_kind.get(t.kind, 0) + 1
    return report
