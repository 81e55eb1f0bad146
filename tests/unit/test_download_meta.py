"""Metadata kept from one extraction, subtitle tracks, WebVTT parsing and filters. Pure."""

from __future__ import annotations

import pytest

from ytpiped.download import filters as flt
from ytpiped.download import follows as fl
from ytpiped.download import meta
from ytpiped.download.filters import Filters

VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.000 --> 00:00:02.500 align:start position:0%
Hello <c>there</c> &amp; welcome

00:00:02.500 --> 00:00:05.000
Hello there &amp; welcome
second line

1:02:03.250 --> 1:02:04.000
<v Speaker>last words</v>

00:00:09.000 --> 00:00:10.000

"""


def test_parse_vtt_keeps_times_and_drops_tags_and_rolled_lines() -> None:
    assert meta.parse_vtt(VTT) == [
        {"start": 0.0, "end": 2.5, "text": "Hello there & welcome"},
        {"start": 2.5, "end": 5.0, "text": "second line"},
        {"start": 3723.25, "end": 3724.0, "text": "last words"}]


def test_metadata_picks_the_kept_fields_and_orders_chapters() -> None:
    info = {"id": "x", "title": "T", "uploader": "U", "channel_id": "UC1", "tags": None,
            "chapters": [{"start_time": 5, "end_time": 9, "title": "B"},
                         {"start_time": 0, "end_time": 5, "title": "A"},
                         {"start_time": 9, "end_time": 9, "title": "empty"}],
            "formats": [{"url": "u"}]}
    got = meta.metadata(info)
    assert (got["channel"], got["channel_id"], got["tags"]) == ("U", "UC1", [])
    assert got["chapters"] == [{"start": 0.0, "end": 5.0, "title": "A"},
                               {"start": 5.0, "end": 9.0, "title": "B"}]
    assert "formats" not in got


TRACKS = {"subtitles": {"en-GB": [{"ext": "json3", "url": "j"}, {"ext": "vtt", "url": "gb"}],
                        "de": [{"ext": "vtt", "url": "de"}]},
          "automatic_captions": {"en": [{"ext": "vtt", "url": "auto-en"}],
                                 "fr-en": [{"ext": "vtt", "url": "translated"}]}}


@pytest.mark.parametrize("mode,lang,want", [
    ("never", "en", None),
    ("manual", "en", meta.Track("en-GB", "gb", False)),
    ("manual", "fr", None),
    ("any", "de", meta.Track("de", "de", False)),
    ("any", "fr", None),  # "fr-en" is French translated to English, not French
])
def test_pick_subtitles(mode: str, lang: str, want: meta.Track | None) -> None:
    assert meta.pick_subtitles(TRACKS, mode, lang) == want


def test_pick_subtitles_any_falls_back_to_automatic() -> None:
    info = {"automatic_captions": TRACKS["automatic_captions"]}
    assert meta.pick_subtitles(info, "manual", "en") is None
    assert meta.pick_subtitles(info, "any", "en") == meta.Track("en", "auto-en", True)


def test_without_ranges_drops_segments_inside_sponsor_reads() -> None:
    segs = [{"start": 0, "end": 2, "text": "a"}, {"start": 2, "end": 4, "text": "ad"},
            {"start": 4, "end": 6, "text": "b"}]
    assert [s["text"] for s in meta.without_ranges(segs, [(1.5, 4.2)])] == ["a", "b"]


VIDEO = {"title": "Cooking with Solar", "duration": 600, "upload_date": "20240501",
         "live_status": "not_live", "media_type": "video"}


@pytest.mark.parametrize("filters,info,reason", [
    (Filters(), VIDEO, None),
    (Filters(min_duration_s=601), VIDEO, "shorter than 601 s"),
    (Filters(max_duration_s=599), VIDEO, "longer than 599 s"),
    (Filters(after="20240502"), VIDEO, "before 20240502"),
    (Filters(after="20240501"), VIDEO, None),
    (Filters(skip_live=True), {**VIDEO, "live_status": "is_live"}, "live stream"),
    (Filters(skip_live=True), {**VIDEO, "live_status": "is_upcoming"}, None),
    (Filters(skip_shorts=True), {**VIDEO, "media_type": "short"}, "YouTube short"),
    (Filters(title_include="solar"), VIDEO, None),
    (Filters(title_include="^solar"), VIDEO, "does not match"),
    (Filters(title_exclude="COOKING"), VIDEO, "matches"),
])
def test_filter_reasons(filters: Filters, info: dict[str, object], reason: str | None) -> None:
    got = filters.reason(info)
    assert got is None if reason is None else reason in str(got)


def test_flat_entry_without_fields_is_let_through() -> None:
    f = Filters(min_duration_s=60, title_include="x")
    assert f.reason({"id": "a"}, incomplete=True) is None
    assert f.reason({"id": "a"}) is not None


def test_per_source_values_override_and_are_checked() -> None:
    class Cfg:
        min_duration_s, max_duration_s, after = 10.0, 0.0, ""
        skip_live = skip_shorts = False
        title_include = title_exclude = ""

    f = Filters.of(Cfg(), {"min_duration_s": "120", "skip_shorts": "true",
                           "after": "2024-01-31"})
    assert (f.min_duration_s, f.skip_shorts, f.after) == (120.0, True, "20240131")
    with pytest.raises(ValueError, match="filter min_duration_s: expected seconds >= 0"):
        flt.parse({"min_duration_s": "-1"})
    with pytest.raises(ValueError, match="unknown filter 'min_len'"):
        flt.parse({"min_len": "1"})
    with pytest.raises(ValueError, match="filter title_include: expected a regular"):
        flt.parse({"title_include": "("})


def test_follow_new_entries_stop_at_the_first_seen() -> None:
    assert fl.new_entries(["c", "b", "a", "z"], ["a", "q"]) == ["c", "b"]
    assert fl.new_entries(["a", "b"], ["a"]) == []
    assert fl.new_entries(["b", "a"], []) == ["b", "a"]


def test_follow_due_and_checked() -> None:
    a = fl.Follow("channel:@a", "u", "channel", added_at=0.0, next_check_at=50.0)
    b = fl.Follow("channel:@b", "u", "channel", added_at=1.0, next_check_at=10.0)
    assert fl.due([a, b], 5.0) is None
    assert fl.due([a, b], 60.0) == b
    after = fl.checked(b, 60.0, 3600.0, new=["x", "y"], added=1, title="B")
    assert (after.next_check_at, after.checks, after.found, after.added, after.seen,
            after.title) == (3660.0, 1, 2, 1, ["x", "y"], "B")
    failed = fl.checked(after, 3700.0, 3600.0, error="network: down")
    assert (failed.error, failed.title, failed.seen, failed.last_found) == (
        "network: down", "B", ["x", "y"], 0)
    assert fl.parse_all({"follow:x": (None, 0.0), "follow:b": (b.to_json(), 0.0),
                         "follow:a": (a.to_json(), 0.0)}) == [a, b]
