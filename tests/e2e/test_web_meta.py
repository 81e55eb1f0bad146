"""`ytpiped web`'s video view shows the stored metadata: the description (collapsed when
long), the tags, and the chapters with links to their moment in the video."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.e2e.helpers import cli, env_for, web_page
from ytpiped.store import SqliteDB, db_path

LONG = "\n".join(f"Line {i} of a long <b>description</b>." for i in range(12))
META = {"description": LONG, "tags": ["solar", "energy <x>"], "language": "en",
        "chapters": [{"start": 0.0, "end": 65.0, "title": "Intro"},
                     {"start": 65.0, "end": 3700.0, "title": "Panels & cells"}]}


def _downloaded(data_dir: Path, vid: str, meta: dict[str, object]) -> None:
    db = SqliteDB(db_path(data_dir))
    try:
        assert [r.id for r in db.claim("download", "w", now=2, lease_s=60, limit=2)] == [vid]
        db.complete(vid, "w", "downloading", "downloaded", now=3, info={"meta": meta})
    finally:
        db.close()


def _page(data_dir: Path, vid: str) -> str:
    """The video's page, from `ytpiped web` started for it."""
    with web_page([], env_for(data_dir)) as (_, url), \
            urllib.request.urlopen(f"{url}video/{vid}") as resp:
        return str(resp.read().decode())


def test_video_view_shows_description_tags_and_chapter_links(data_dir: Path) -> None:
    assert cli(data_dir, "add", "webmeta001a").returncode == 0
    _downloaded(data_dir, "webmeta001a", META)
    html = _page(data_dir, "webmeta001a")
    assert "<details id='description'><summary>Line 0 of a long &lt;b&gt;description" in html
    assert "Line 11 of a long &lt;b&gt;description&lt;/b&gt;." in html  # all of it, escaped
    assert "<ul id='tags' class='tags'><li>solar</li><li>energy &lt;x&gt;</li></ul>" in html
    assert ('<a class="t" href="https://www.youtube.com/watch?v=webmeta001a&amp;t=65s" '
            'rel="noreferrer">01:05</a> Panels &amp; cells</li>') in html
    assert "<dt>language</dt><dd>en</dd>" in html


def test_a_short_description_is_shown_open_and_nothing_else_is_made_up(
        data_dir: Path) -> None:
    assert cli(data_dir, "add", "webmeta002b").returncode == 0
    _downloaded(data_dir, "webmeta002b", {"description": "Short.", "tags": [],
                                          "chapters": []})
    html = _page(data_dir, "webmeta002b")
    assert "<div id='description'><div class='description'>Short.</div></div>" in html
    assert "<details" not in html and "id='tags'" not in html and "id='chapters'" not in html
