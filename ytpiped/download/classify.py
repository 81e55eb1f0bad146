"""yt-dlp exception/message text -> error kind. Pure.

The messages are YouTube's and yt-dlp's own (yt_dlp/extractor/youtube/_video.py,
_base.py; yt_dlp/utils/_utils.py).
"""

from __future__ import annotations

import re

from ytpiped.errors import is_disk_full

RATE_LIMITED = "rate_limited"
BOT_CHECK = "bot_check"
UNAVAILABLE = "unavailable"
FORBIDDEN = "forbidden"
NETWORK = "network"
TRUNCATED = "truncated"
DISK_FULL = "disk_full"
ERROR = "download_error"

#: global cooldown, the video goes back without spending an attempt
COOLDOWN_KINDS = frozenset({RATE_LIMITED, BOT_CHECK})

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (DISK_FULL, re.compile(r"no space left on device|errno 28|disk quota exceeded", re.I)),
    (RATE_LIMITED, re.compile(
        r"http error 429|too many requests|rate-limited|rate limited|"
        r"this content isn't available, try again later|try again later", re.I)),
    (BOT_CHECK, re.compile(
        r"confirm you(?:'|’)?re not a bot|captcha|"
        r"cookies are no longer valid|use --cookies-from-browser or --cookies", re.I)),
    (UNAVAILABLE, re.compile(
        r"video unavailable|private video|this video is private|members[- ]only|"
        r"join this channel|available to this channel's members|has been removed|"
        r"removed for violating|account associated with this video has been terminated|"
        r"copyright|not made this video available in your country|geo.?restrict|"
        r"confirm your age|age-restricted|inappropriate for some users|"
        r"http error 404|http error 410|not found|unsupported url|"
        r"no video formats found|no media found|requested format is not available|"
        r"premieres in|this live event will begin|is not a valid url", re.I)),
    (FORBIDDEN, re.compile(r"http error 403|forbidden", re.I)),
    (TRUNCATED, re.compile(r"downloaded \d+ bytes, expected \d+ bytes|content too short|"
                           r"bytes read, \d+ more expected|incomplete read", re.I)),
    (NETWORK, re.compile(
        r"http error 5\d\d|timed? ?out|timeout|connection (?:reset|refused|aborted)|"
        r"remote end closed|temporary failure in name resolution|network is unreachable|"
        r"incomplete read|did not get any data|bytes read, \d+ more expected|"
        r"content too short|unable to download webpage|eof occurred|ssl", re.I)),
)


def classify(text: str, exc: BaseException | None = None) -> str:
    """Kind of a download failure from its message (and exception, when there is one)."""
    if is_disk_full(exc):
        return DISK_FULL
    seen: set[int] = set()
    cur = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if type(cur).__name__ == "ContentTooShortError":
            return TRUNCATED
        cur = cur.__cause__ or cur.__context__
    for kind, pattern in _PATTERNS:
        if pattern.search(text):
            return kind
    return ERROR


_EXTRACTOR_PREFIX = re.compile(r"^\[[\w:.-]+\] [^\s:]+: ")
_CAUSED_BY = re.compile(r" \(caused by <.*>\)\.?$", re.S)


def tidy(text: str) -> str:
    """yt-dlp's message as a person wants to read it in `status`: without "ERROR: ", the
    "[extractor] id: " prefix (status names the video already) and the trailing
    "(caused by <HTTPError ...>)" repeat. Classify the full text, not this."""
    text = text.removeprefix("ERROR: ").strip()
    short = _CAUSED_BY.sub("", _EXTRACTOR_PREFIX.sub("", text)).strip()
    return short or text


def is_permanent(kind: str) -> bool:
    return kind == UNAVAILABLE
