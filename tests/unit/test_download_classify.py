"""The error table: yt-dlp's real messages (from its source and issue tracker) -> kinds."""

from __future__ import annotations

import errno

import pytest

from ytpiped.download.classify import (
    COOLDOWN_KINDS,
    PER_VIDEO_KINDS,
    UPCOMING_MARGIN_S,
    classify,
    feeds_breaker,
    is_permanent,
    starts_in,
    tidy,
)

COOKIE_HINT = ("Use --cookies-from-browser or --cookies for the authentication. See  "
               "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for "
               "how to manually pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/"
               "Extractors#exporting-youtube-cookies  for tips on effectively exporting YouTube "
               "cookies")
EJS_HELP = ("Ensure you have a supported JavaScript runtime and challenge solver script "
            "distribution installed. Review any warnings presented before this message. For "
            "more details, refer to  https://github.com/yt-dlp/yt-dlp/wiki/EJS")
FORMAT_ERROR = ("ERROR: [youtube] dQuqZs8b3RY: Requested format is not available. Use "
                "--list-formats for a list of available formats")

#: (yt-dlp's error, the warnings it gave before, kind)
CASES: list[tuple[str, tuple[str, ...], str]] = [
    # cooldowns of every download, no attempt spent
    (f"ERROR: [youtube] abc: Sign in to confirm you’re not a bot. {COOKIE_HINT}", (),
     "bot_check"),
    ("ERROR: [youtube] abc: Sign in to confirm you're not a bot. This helps protect our "
     "community.", (), "bot_check"),
    ("WARNING: The provided YouTube account cookies are no longer valid. They have likely been "
     "rotated in the browser as a security measure.", (), "bot_check"),
    ("ERROR: [youtube] abc: This content isn't available, try again later. The current session "
     "has been rate-limited by YouTube for up to an hour. It is recommended to use `-t sleep` "
     "to add a delay between video requests to avoid exceeding the rate limit.", (),
     "rate_limited"),
    ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", (),
     "rate_limited"),
    # the video's own fault: permanent, each with its own kind
    (f"ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this "
     f"video. {COOKIE_HINT}", (), "private"),
    ("ERROR: [youtube] abc: Video unavailable. This video is private", (), "private"),
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", (),
     "removed"),
    ("ERROR: [youtube] abc: This video has been removed for violating YouTube's Terms of "
     "Service", (), "removed"),
    ("ERROR: [youtube] abc: Video unavailable. This video is no longer available because the "
     "YouTube account associated with this video has been terminated.", (), "removed"),
    ("ERROR: [youtube] abc: Video unavailable. This video is no longer available due to a "
     "copyright claim by Example Records", (), "removed"),
    ("ERROR: [youtube] h7aSM88pUv8: Join this channel to get access to members-only content "
     "like this video, and other exclusive perks.", (), "members_only"),
    ("ERROR: [youtube] epoGMzLgyFQ: Join this channel from your computer or Android app to get "
     "access to members-only content like this video.", (), "members_only"),
    ("ERROR: [youtube] t0_4P09qL8k: This video is available to this channel's members on "
     "level: Tier 1 (or any higher level). Join this channel to get access to members-only "
     "content and other exclusive perks.", (), "members_only"),
    (f"ERROR: [youtube] zmBr_gc2riE: Sign in to confirm your age. This video may be "
     f"inappropriate for some users. {COOKIE_HINT}", (), "age_restricted"),
    ("ERROR: [youtube] abc: The uploader has not made this video available in your country",
     (), "geo_blocked"),
    ("ERROR: [youtube] abc: Video unavailable. This video contains content from SME, who has "
     "blocked it in your country on copyright grounds", (), "geo_blocked"),
    ("ERROR: [BBC] p0abc: This video is not available from your location due to geo "
     "restriction", (), "geo_blocked"),
    ("ERROR: [youtube] abc: Video unavailable", (), "unavailable"),
    ("ERROR: [youtube:tab] UCabc: This channel does not exist.", (), "unavailable"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found", (),
     "unavailable"),
    ("no media found at https://example.org/feed.xml: the page or feed lists no entries", (),
     "unavailable"),
    # not started yet: deferred past the start, no attempt spent
    ("ERROR: [youtube] ef2n23E8S8s: This live event will begin in 17 days.", (), "upcoming"),
    ("ERROR: [youtube] abc: This live event will begin in a few moments.", (), "upcoming"),
    ("ERROR: [youtube] 4pfMyoT6LhE: Premieres in 2 hours", (), "upcoming"),
    ("ERROR: [youtube] Gp0fPb3IJRM: Premieres in 40 days", (), "upcoming"),
    ("ERROR: [youtube] abc: Premiere will begin shortly", (), "upcoming"),
    # retried, and they feed the breaker: the cause is the setup or YouTube, not the video
    (FORMAT_ERROR, (), "format_unavailable"),
    ("ERROR: [youtube] abc: No video formats found!", (), "format_unavailable"),
    (FORMAT_ERROR, (
        "[youtube] abc: No supported JavaScript runtime could be found. Only deno is enabled by "
        "default; to use another runtime add  --js-runtimes RUNTIME[:PATH]  to your "
        "command/config. YouTube extraction without a JS runtime has been deprecated, and some "
        "formats may be missing. See  https://github.com/yt-dlp/yt-dlp/wiki/EJS  for details "
        "on installing one", "Only images are available for download. use --list-formats to "
        "see them"), "js_challenge"),
    (FORMAT_ERROR, (
        "[youtube] [jsc] Error solving n challenge request using \"deno\" provider: Error "
        "running deno process (returncode: 1): error: Uncaught (in promise) \"found 0 sig "
        "function possibilities\".",
        f"[youtube] kqwGWCSQsgo: n challenge solving failed: Some formats may be missing. "
        f"{EJS_HELP}"), "js_challenge"),
    (FORMAT_ERROR, (f"[youtube] abc: Signature solving failed: Some formats may be missing. "
                    f"{EJS_HELP}",), "js_challenge"),
    (FORMAT_ERROR, (
        "[youtube] abc: ios client https formats require a GVS PO Token which was not "
        "provided. They will be skipped as they may yield HTTP Error 403. You can manually "
        "pass a GVS PO Token for this client with --extractor-args \"youtube:po_token="
        "ios.gvs+XXX\".",), "po_token"),
    ("ERROR: fragment 1 not found, unable to continue", (
        "[download] Got error: HTTP Error 403: Forbidden. Retrying fragment 1 (1/10)...",),
     "po_token"),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", (), "forbidden"),
    ("ERROR: [generic] memory: Unable to download webpage: HTTP Error 403: Forbidden (caused by "
     "<HTTPError 403: Forbidden>)", (), "forbidden"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable", (),
     "network"),
    ("ERROR: [download] Got error: Downloaded 22360 bytes, expected 44721 bytes.", (),
     "truncated"),
    ("ERROR: Unable to download webpage: The read operation timed out", (), "network"),
    ("ERROR: Unable to download webpage: [Errno 111] Connection refused", (), "network"),
    ("ERROR: unable to write data: [Errno 28] No space left on device", (), "disk_full"),
    ("something nobody has seen before", (), "download_error"),
]


@pytest.mark.parametrize("text,warnings,kind", CASES)
def test_real_messages(text: str, warnings: tuple[str, ...], kind: str) -> None:
    assert classify(text, warnings=warnings) == kind


def test_every_kind_of_the_issue_is_in_the_table() -> None:
    kinds = {k for _, _, k in CASES}
    assert kinds >= PER_VIDEO_KINDS | COOLDOWN_KINDS | {
        "upcoming", "format_unavailable", "js_challenge", "po_token"}


def test_enospc_from_the_exception_chain() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert classify(str(outer), outer) == "disk_full"


def test_geo_restricted_error_class_decides_whatever_the_text() -> None:
    class GeoRestrictedError(Exception):
        pass

    assert classify("ERROR: [xyz] 1: sorry", GeoRestrictedError("sorry")) == "geo_blocked"


def test_permanent_kinds_are_the_videos_own_faults_and_feed_no_breaker() -> None:
    assert all(is_permanent(k) for k in PER_VIDEO_KINDS)
    retried = ("format_unavailable", "js_challenge", "po_token", "forbidden", "network",
               "truncated", "download_error")
    assert not any(is_permanent(k) for k in (*retried, "rate_limited", "bot_check", "upcoming",
                                             "disk_full"))
    assert all(feeds_breaker(k) for k in retried)
    assert not any(feeds_breaker(k) for k in (*PER_VIDEO_KINDS, "rate_limited", "bot_check",
                                              "upcoming", "disk_full"))


@pytest.mark.parametrize("text,seconds", [
    ("This live event will begin in 17 days.", 17 * 86400),
    ("Premieres in 2 hours", 2 * 3600),
    ("Premieres in 1 minute", 60),
    ("This live event will begin in a few moments.", 0),
    ("Premiere will begin shortly", 0),
])
def test_upcoming_waits_past_the_announced_start(text: str, seconds: int) -> None:
    assert starts_in(text) == seconds + UPCOMING_MARGIN_S


@pytest.mark.parametrize("text,shown", [
    ("ERROR: [generic] memory: Unable to download webpage: HTTP Error 403: Forbidden "
     "(caused by <HTTPError 403: Forbidden>)",
     "Unable to download webpage: HTTP Error 403: Forbidden"),
    ("ERROR: [youtube:tab] UCabc: This channel does not exist.", "This channel does not exist."),
    ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests",
     "unable to download video data: HTTP Error 429: Too Many Requests"),
    ("[youtube] abc: ", "[youtube] abc:"),  # nothing left after the prefix: keep it all
    ("ERROR: [youtube] abc: Requested format is not available\nsecond line\nthird",
     "Requested format is not available"),  # yt-dlp's first line only
])
def test_tidy_keeps_yt_dlps_first_line_without_prefix_and_cause(text: str, shown: str) -> None:
    assert tidy(text) == shown
