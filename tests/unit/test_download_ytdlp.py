"""Pure helpers of the yt-dlp wrapper: entry URLs of listings, what counts as a YouTube video."""

from __future__ import annotations

from pathlib import Path

from ytpiped.download.ytdlp import entry_urls, is_youtube_video, remove_attempt_files


def test_feed_entries_are_their_enclosure_urls_without_the_smuggled_guid() -> None:
    info = {"_type": "playlist", "entries": [
        {"_type": "url_transparent", "title": "Episode 1",
         "url": "https://cdn.example.org/e1.mp3#__youtubedl_smuggle=%7B%22force_videoid%22"
                "%3A+%22guid-1%22%7D"},
        {"_type": "url_transparent", "url": "https://cdn.example.org/e2.mp3"},
        {"_type": "url_transparent", "url": "https://cdn.example.org/e2.mp3"},  # twice
    ]}
    assert entry_urls(info) == ["https://cdn.example.org/e1.mp3",
                                "https://cdn.example.org/e2.mp3"]


def test_page_players_are_their_media_urls_and_youtube_entries_their_watch_urls() -> None:
    info = {"_type": "playlist", "entries": [
        {"id": "page-1", "formats": [{"url": "https://example.org/a.m4a", "ext": "m4a"}]},
        {"_type": "url", "ie_key": "Youtube", "id": "dQw4w9WgXcQ",
         "url": "https://www.youtube.com/embed/dQw4w9WgXcQ"},
        {"id": "page-3"},  # no URL at all: nothing to queue
        None,
    ]}
    assert entry_urls(info) == ["https://example.org/a.m4a",
                                "https://www.youtube.com/watch?v=dQw4w9WgXcQ"]


def test_only_youtube_videos_skip_the_listing_check() -> None:
    assert is_youtube_video("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert is_youtube_video("https://youtu.be/dQw4w9WgXcQ")
    assert not is_youtube_video("https://www.youtube.com/playlist?list=PLxyz0123456")
    assert not is_youtube_video("https://feeds.example.org/podcast.xml")


def test_remove_attempt_files_takes_only_that_videos_files(tmp_path: Path) -> None:
    for name in ("url-ab.m4a", "url-ab.mp3.part", "url-ab.webm.ytdl", "url-abc.m4a",
                 "other.mp3"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_attempt_files(tmp_path, "url-ab") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mp3", "url-abc.m4a"]
