from __future__ import annotations

import pytest

from ytpiped.urls import Invalid, Target, canonicalise, generic_id

V = "dQw4w9WgXcQ"
VIDEO = ("video", V, f"https://www.youtube.com/watch?v={V}")

CASES: list[tuple[str, tuple[str, str, str]]] = [
    (f"https://www.youtube.com/watch?v={V}", VIDEO),
    (f"http://www.youtube.com/watch?v={V}", VIDEO),
    (f"https://youtube.com/watch?v={V}", VIDEO),
    (f"https://m.youtube.com/watch?v={V}", VIDEO),
    (f"https://music.youtube.com/watch?v={V}&feature=share", VIDEO),
    (f"https://www.youtube.com/watch?v={V}&t=42s", VIDEO),
    (f"https://www.youtube.com/watch?v={V}&t=1h2m3s", VIDEO),
    (f"https://www.youtube.com/watch?v={V}&si=AbCdEfGhIjKl", VIDEO),
    (f"https://www.youtube.com/watch?feature=youtu.be&v={V}", VIDEO),
    (f"https://www.youtube.com/watch?v={V}&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=3",
     VIDEO),
    (f"https://www.youtube.com/watch?v={V}&utm_source=newsletter&utm_medium=email", VIDEO),
    (f"https://www.youtube.com/watch?v={V}#comments", VIDEO),
    (f"HTTPS://WWW.YOUTUBE.COM/watch?v={V}", VIDEO),
    (f"https://WWW.YouTube.com/watch?v={V}", VIDEO),
    (f"www.youtube.com/watch?v={V}", VIDEO),
    (f"youtube.com/watch?v={V}", VIDEO),
    (f"//www.youtube.com/watch?v={V}", VIDEO),
    (f"https://youtu.be/{V}", VIDEO),
    (f"https://youtu.be/{V}?si=Xy12_ab", VIDEO),
    (f"https://youtu.be/{V}?t=90", VIDEO),
    (f"youtu.be/{V}", VIDEO),
    (f"https://www.youtube.com/shorts/{V}", VIDEO),
    (f"https://youtube.com/shorts/{V}?feature=share", VIDEO),
    (f"https://www.youtube.com/embed/{V}?start=10", VIDEO),
    (f"https://www.youtube-nocookie.com/embed/{V}", VIDEO),
    (f"https://www.youtube.com/live/{V}?si=abc", VIDEO),
    (f"https://www.youtube.com/v/{V}", VIDEO),
    (f"https://m.youtube.com/shorts/{V}", VIDEO),
    (V, VIDEO),
    (f"  {V}  ", VIDEO),
    ("https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
     ("playlist", "playlist:PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
      "https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG")),
    ("https://youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&si=zz",
     ("playlist", "playlist:PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
      "https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG")),
    ("https://www.youtube.com/channel/UC_x5XG1OV2P6uZZ5FSM9Ttw",
     ("channel", "channel:UC_x5XG1OV2P6uZZ5FSM9Ttw",
      "https://www.youtube.com/channel/UC_x5XG1OV2P6uZZ5FSM9Ttw/videos")),
    ("https://www.youtube.com/@lexfridman",
     ("channel", "channel:@lexfridman", "https://www.youtube.com/@lexfridman/videos")),
    ("https://www.youtube.com/@lexfridman/videos",
     ("channel", "channel:@lexfridman", "https://www.youtube.com/@lexfridman/videos")),
    ("https://www.youtube.com/c/GoogleDevelopers",
     ("channel", "channel:c/GoogleDevelopers",
      "https://www.youtube.com/c/GoogleDevelopers/videos")),
    ("https://www.youtube.com/user/nasa",
     ("channel", "channel:user/nasa", "https://www.youtube.com/user/nasa/videos")),
    ("https://vimeo.com/76979871",
     ("generic", generic_id("https://vimeo.com/76979871"), "https://vimeo.com/76979871")),
    ("http://127.0.0.1:8080/v/solar",
     ("generic", generic_id("http://127.0.0.1:8080/v/solar"), "http://127.0.0.1:8080/v/solar")),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_canonicalise(text: str, expected: tuple[str, str, str]) -> None:
    got = canonicalise(text)
    assert isinstance(got, Target), got
    assert (got.kind, got.id, got.url) == expected


@pytest.mark.parametrize("text", ["", "   ", "# a comment", "  # indented comment"])
def test_blank_and_comments_are_skipped(text: str) -> None:
    assert canonicalise(text) is None


@pytest.mark.parametrize("text,reason", [
    ("not a url", "contains spaces"),
    ("hello", "neither a URL nor an 11-character video id"),
    ("ftp://example.com/file.mp3", "unsupported scheme 'ftp'"),
    ("https://www.youtube.com/watch?v=tooShort", "video id 'tooShort'"),
    ("https://youtu.be/", "youtu.be link without"),
    ("https://www.youtube.com/feed/subscriptions", "unsupported YouTube link path"),
    ("https://www.youtube.com/", "no video, playlist or channel"),
    ("https://www.youtube.com/shorts/", "/shorts/ link without"),
    ("https://www.youtube.com/playlist?list=", "playlist link without list="),
    ("https://www.youtube.com/channel/xyz", "valid UC"),
    ("https:///nohost", "without a host"),
    ("javascript:alert(1)", "neither a URL"),
    ("dQw4w9WgXc", "neither a URL nor an 11-character"),
])
def test_invalid_lines_say_why(text: str, reason: str) -> None:
    got = canonicalise(text)
    assert isinstance(got, Invalid)
    assert reason in got.reason


def test_same_video_in_all_forms_has_one_id() -> None:
    ids = {t.id for text, exp in CASES if exp == VIDEO
           for t in [canonicalise(text)] if isinstance(t, Target)}
    assert ids == {V}


@pytest.mark.parametrize("text", [
    f"https://youtu.be/{V}?x=\x00",
    f"https://www.youtube.com/watch?v={V}\x07",
    f"https://www.youtube.com/watch?v={V}&t=1\x1b[2J",
    f"https://www.youtube.com/watch?x=\x1b&v={V}",
    f"{V}\x00",
    "https://example.com/a\x1b]0;title\x07",
    "https://example.com/\u202egnp.exe",
    "https://example.com/\x9b31m",
])
def test_control_and_invisible_characters_make_a_line_invalid(text: str) -> None:
    parsed = canonicalise(text)
    assert isinstance(parsed, Invalid), parsed
    assert parsed.reason.startswith("contains a control or invisible character (")
    assert parsed.reason.isprintable()
