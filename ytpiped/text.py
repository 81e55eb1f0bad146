"""Text for a terminal: remote data (titles, URLs, error messages from servers and tools)
printed for a human must not be able to move the cursor, retitle the window, clear the
screen, forge a line of its own or reorder what is shown. JSON output needs none of this:
its encoder escapes control characters itself."""

from __future__ import annotations

import re

#: C0 controls (newline and tab included), DEL, C1 controls, and the bidi controls and
#: line/paragraph separators; other invisible characters (a zero-width joiner in an emoji)
#: are harmless and stay
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    return ascii(m.group())[1:-1]  # '\x1b' -> \x1b, '\u202e' -> \u202e, '\n' -> \n


def printable(text: str) -> str:
    """`text` as one line safe to print, every control character shown as its escape
    (`\\x1b`, `\\n`, `\\u202e`); printing the result again changes nothing."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """`printable` for each line of a multi-line text of our own (the line breaks stay)."""
    return "\n".join(printable(line) for line in text.split("\n"))
