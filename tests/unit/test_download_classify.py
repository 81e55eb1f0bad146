from __future__ import annotations

import errno

import pytest

from ytpiped.download.classify import classify, is_permanent, tidy

CASES = [
    ("ERROR: [youtube] abc: Sign in to confirm you’re not a bot. Use --cookies-from-browser or "
     "--cookies for the authentication.", "bot_check"),
    ("ERROR: [youtube] abc: Sign in to confirm you're not a bot. This helps protect our "
     "community.", "bot_check"),
    ("WARNING: The provided YouTube account cookies are no longer valid.", "bot_check"),
    ("ERROR: [youtube] abc: This content isn't available, try again later. The current session "
     "has been rate-limited by YouTube for up to an hour.", "rate_limited"),
    ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", "rate_limited"),
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader",
     "unavailable"),
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video",
     "unavailable"),
    ("ERROR: [youtube] abc: Join this channel to get access to members-only content like this "
     "video, and other exclusive perks.", "unavailable"),
    ("ERROR: [youtube] abc: The uploader has not made this video available in your country",
     "unavailable"),
    ("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for "
     "some users.", "unavailable"),
    ("ERROR: [youtube] abc: Video unavailable. This video contains content from SME, who has "
     "blocked it on copyright grounds", "unavailable"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found", "unavailable"),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", "forbidden"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable",
     "network"),
    ("ERROR: [download] Got error: Downloaded 22360 bytes, expected 44721 bytes.", "truncated"),
    ("ERROR: Unable to download webpage: The read operation timed out", "network"),
    ("ERROR: Unable to download webpage: [Errno 111] Connection refused", "network"),
    ("ERROR: unable to write data: [Errno 28] No space left on device", "disk_full"),
    ("no media found at https://example.org/feed.xml: the page or feed lists no entries",
     "unavailable"),
    ("something nobody has seen before", "download_error"),
]


@pytest.mark.parametrize("text,kind", CASES)
def test_real_messages(text: str, kind: str) -> None:
    assert classify(text) == kind


def test_enospc_from_the_exception_chain() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert classify(str(outer), outer) == "disk_full"


def test_only_unavailable_is_permanent() -> None:
    assert is_permanent("unavailable")
    assert not any(is_permanent(k) for k in ("rate_limited", "bot_check", "network",
                                             "forbidden", "truncated", "disk_full"))


@pytest.mark.parametrize("text,shown", [
    ("ERROR: [generic] memory: Unable to download webpage: HTTP Error 403: Forbidden "
     "(caused by <HTTPError 403: Forbidden>)",
     "Unable to download webpage: HTTP Error 403: Forbidden"),
    ("ERROR: [youtube:tab] UCabc: This channel does not exist.", "This channel does not exist."),
    ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests",
     "unable to download video data: HTTP Error 429: Too Many Requests"),
    ("[youtube] abc: ", "[youtube] abc:"),  # nothing left after the prefix: keep it all
])
def test_tidy_drops_prefix_and_cause_for_status(text: str, shown: str) -> None:
    assert tidy(text) == shown
