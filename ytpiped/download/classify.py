"""yt-dlp's error (and the warnings before it) -> what to do with the video. Pure.

The texts are yt-dlp's and YouTube's own (yt_dlp/extractor/youtube/_video.py, _base.py,
extractor/common.py, YoutubeDL.py, downloader/fragment.py; YouTube's playability
"reason" strings as yt-dlp reports them), as tests/unit/test_download_classify.py lists.

- the video's own fault -> `Permanent`, with its own kind: private, removed,
  members_only, age_restricted, geo_blocked, unavailable;
- a live event or premiere that has not started -> `upcoming`: deferred past the start,
  no attempt spent;
- rate limits and bot checks -> a cooldown of every download, no attempt spent;
- the rest (formats missing, an unsolved JavaScript challenge, no JavaScript runtime, a
  403 on media fragments that a missing PO token causes, network trouble) is retried and
  feeds the circuit breaker: when many videos in a row fail like this, the cause is
  ytpiped's setup or YouTube, not the videos.

YouTube reports a missing JavaScript runtime or an unsolved challenge only as warnings;
the error that follows is "Requested format is not available". So the warnings yt-dlp
gave on the way decide between `js_challenge`, `po_token` and `format_unavailable`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ytpiped import kinds
from ytpiped.errors import is_disk_full

RATE_LIMITED = "rate_limited"
BOT_CHECK = "bot_check"
UPCOMING = "upcoming"
PRIVATE = "private"
REMOVED = "removed"
MEMBERS_ONLY = "members_only"
AGE_RESTRICTED = "age_restricted"
GEO_BLOCKED = "geo_blocked"
UNAVAILABLE = "unavailable"
FORMAT_UNAVAILABLE = "format_unavailable"
JS_CHALLENGE = "js_challenge"
PO_TOKEN = "po_token"
FORBIDDEN = "forbidden"
NETWORK = "network"
TRUNCATED = "truncated"
DISK_FULL = kinds.DISK_FULL
ERROR = "download_error"

#: global cooldown, the video goes back without spending an attempt
COOLDOWN_KINDS = frozenset({RATE_LIMITED, BOT_CHECK})
#: the video's own fault: it fails at once, and the circuit breaker does not count it
PER_VIDEO_KINDS = frozenset({PRIVATE, REMOVED, MEMBERS_ONLY, AGE_RESTRICTED, GEO_BLOCKED,
                             UNAVAILABLE})
#: not a failure at all: the video is retried after its start, no attempt spent
DEFER_KINDS = frozenset({UPCOMING})

_I = re.I
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (DISK_FULL, re.compile(r"no space left on device|errno 28|disk quota exceeded", _I)),
    (UPCOMING, re.compile(r"this live event will begin in|premieres? in \d|"
                          r"premiere will begin shortly|will begin in a few moments", _I)),
    (RATE_LIMITED, re.compile(
        r"http error 429|too many requests|rate-limited|rate limited|"
        r"this content isn't available, try again later|try again later", _I)),
    # before the bot check: YouTube appends the same "use --cookies" hint to these
    (PRIVATE, re.compile(r"\bprivate video\b|this video is private|"
                         r"video has been made private", _I)),
    (MEMBERS_ONLY, re.compile(r"members[- ]only|available to this channel's members|"
                              r"join this channel", _I)),
    (AGE_RESTRICTED, re.compile(r"confirm your age|age[- ]restricted|"
                                r"inappropriate for some users|age verification", _I)),
    (GEO_BLOCKED, re.compile(r"not made this video available in your country|"
                             r"not available (?:from|in) your (?:location|country)|"
                             r"geo[- ]?restrict|blocked it in your country", _I)),
    (REMOVED, re.compile(r"has been removed|removed for violating|removed by the uploader|"
                         r"account associated with this video has been terminated|"
                         r"no longer available|copyright claim", _I)),
    (BOT_CHECK, re.compile(r"confirm you(?:'|’)?re not a bot|captcha|"
                           r"cookies are no longer valid", _I)),
    (PO_TOKEN, re.compile(r"fragment \d+ not found|retrying fragment|po token", _I)),
    (JS_CHALLENGE, re.compile(r"no supported javascript runtime|"
                              r"(?:n|signature) challenge solving failed|"
                              r"signature solving failed|error solving .*challenge|"
                              r"challenge solver", _I)),
    (FORMAT_UNAVAILABLE, re.compile(r"requested format is not available|"
                                    r"no video formats found|only images are available", _I)),
    (UNAVAILABLE, re.compile(
        r"video unavailable|this video is unavailable|this video is drm protected|"
        r"http error 404|http error 410|not found|unsupported url|no media found|"
        r"is not a valid url|does not exist", _I)),
    (FORBIDDEN, re.compile(r"http error 403|forbidden", _I)),
    (TRUNCATED, re.compile(r"downloaded \d+ bytes, expected \d+ bytes|content too short|"
                           r"bytes read, \d+ more expected|incomplete read", _I)),
    (NETWORK, re.compile(
        r"http error 5\d\d|timed? ?out|timeout|connection (?:reset|refused|aborted)|"
        r"remote end closed|temporary failure in name resolution|network is unreachable|"
        r"did not get any data|unable to download webpage|eof occurred|ssl", _I)),
)

#: what a warning before a format error says about its cause
_WARNED: tuple[tuple[str, re.Pattern[str]], ...] = (
    (JS_CHALLENGE, re.compile(r"no supported javascript runtime|challenge solving failed|"
                              r"signature solving failed|error solving .*challenge|"
                              r"challenge solver|remote components? .* skipped", _I)),
    (PO_TOKEN, re.compile(r"po token", _I)),
)


def classify(text: str, exc: BaseException | None = None,
             warnings: Sequence[str] = ()) -> str:
    """Kind of a download failure from yt-dlp's message, its exception (when there is
    one) and the warnings yt-dlp gave before it."""
    if is_disk_full(exc):
        return DISK_FULL
    seen: set[int] = set()
    cur = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        name = type(cur).__name__
        if name == "ContentTooShortError":
            return TRUNCATED
        if name == "GeoRestrictedError":
            return GEO_BLOCKED
        cur = cur.__cause__ or cur.__context__
    kind = next((k for k, pattern in _PATTERNS if pattern.search(text)), ERROR)
    if kind in (FORMAT_UNAVAILABLE, FORBIDDEN, ERROR):
        for cause, pattern in _WARNED:
            if any(pattern.search(w) for w in warnings):
                return cause
    return kind


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
          "month": 30 * 86400, "year": 365 * 86400}
_STARTS_IN = re.compile(r"(?:will begin|premieres?) in (\d+) (second|minute|hour|day|week|"
                        r"month|year)s?", _I)
#: retried this long after the announced start (YouTube rounds "in 3 hours" down)
UPCOMING_MARGIN_S = 300.0


def starts_in(text: str) -> float:
    """Seconds until a live event or premiere starts, by its announcement ("This live
    event will begin in 3 hours.", "Premieres in 40 days"), plus a margin; "shortly" and
    "in a few moments" give the margin alone."""
    m = _STARTS_IN.search(text)
    if m is None:
        return UPCOMING_MARGIN_S
    return int(m.group(1)) * _UNITS[m.group(2).lower()] + UPCOMING_MARGIN_S


_EXTRACTOR_PREFIX = re.compile(r"^\[[\w:.-]+\] [^\s:]+: ")
_CAUSED_BY = re.compile(r" \(caused by <.*>\)\.?$", re.S)


def tidy(text: str) -> str:
    """yt-dlp's message as a person wants to read it in `status`: its first line, without
    "ERROR: ", the "[extractor] id: " prefix (status names the video already) and the
    trailing "(caused by <HTTPError ...>)" repeat. Classify the full text, not this."""
    text = text.removeprefix("ERROR: ").strip()
    first = text.splitlines()[0].strip() if text else text
    short = _CAUSED_BY.sub("", _EXTRACTOR_PREFIX.sub("", first)).strip()
    return short or first


def is_permanent(kind: str) -> bool:
    return kind in PER_VIDEO_KINDS


def feeds_breaker(kind: str) -> bool:
    """A failure that is not the video's own and spends an attempt: many in a row say
    that downloading itself is broken (ytpiped's setup, yt-dlp, or YouTube)."""
    return kind not in PER_VIDEO_KINDS | COOLDOWN_KINDS | DEFER_KINDS | {DISK_FULL}
