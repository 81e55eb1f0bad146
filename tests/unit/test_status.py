from __future__ import annotations

from pathlib import Path

from ytpiped import status
from ytpiped.status import clip
from ytpiped.store import NewVideo, SqliteDB


def test_clip_keeps_one_line_and_marks_the_cut() -> None:
    assert clip("short\nerror", 20) == "short error"
    cut = clip("x" * 30 + " tail", 20)
    assert len(cut) == 20 and cut.endswith("…") and "tail" not in cut


def test_failed_videos_show_one_clipped_line_each() -> None:
    store = SqliteDB(Path(":memory:"), now=0)
    try:
        store.add_videos([NewVideo("aaaaaaaaaaa", "https://youtu.be/aaaaaaaaaaa", "video")],
                         now=0)
        (row,) = store.claim("download", "w", now=1, lease_s=10, limit=1)
        store.fail(row.id, "w", "downloading", now=2, kind="forbidden",
                   error="HTTP Error 403: Forbidden\n" + "detail " * 40)
        text = status.format_status(status.build(store, 3, None))
    finally:
        store.close()
    (line,) = [x for x in text.splitlines() if "[download/forbidden]" in x]
    assert line.startswith("  aaaaaaaaaaa [download/forbidden] HTTP Error 403: Forbidden detail")
    assert line.endswith("…") and len(line.split("] ", 1)[1]) == 100


def _store_with_progress(started_at: float, now: float) -> SqliteDB:
    store = SqliteDB(Path(":memory:"), now=0)
    store.add_videos([NewVideo(f"vid{i:08d}", "u", "video") for i in range(100)], now=0)
    store.set_state("daemon", {"started_at": started_at}, started_at)
    for i in range(20):  # 20 transcriptions in the 10 minutes before `now`
        store.record_event(now - 600 + 30 * i, "completed", stage="transcribe")
    return store


def test_a_fresh_daemon_rates_what_it_did_since_it_started() -> None:
    now = 100_000.0
    store = _store_with_progress(started_at=now - 600, now=now)
    try:
        st = status.build(store, now, daemon_pid=1234)
        assert st["stages"]["transcribe"]["rate_per_hour"] == 120.0  # 20 in 10 min
        assert st["stages"]["transcribe"]["completed_last_hour"] == 20
        # 100 videos still to transcribe at 120/h: 50 min, not the 5 h of "20 in the last hour"
        assert st["eta_seconds"] == 100 / 120 * 3600
        later = status.build(store, now + 3 * 3600, daemon_pid=1234)  # up for hours: last hour
        assert later["stages"]["transcribe"]["rate_per_hour"] == 0.0
    finally:
        store.close()


def test_no_eta_while_the_daemon_is_not_running() -> None:
    now = 100_000.0
    store = _store_with_progress(started_at=now - 600, now=now)
    try:
        st = status.build(store, now, daemon_pid=None)
        assert st["eta_seconds"] is None
        assert st["stages"]["transcribe"]["rate_per_hour"] == 20.0  # what the last hour did
    finally:
        store.close()


EVIL = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"


def _store_with_hostile_text() -> SqliteDB:
    store = SqliteDB(Path(":memory:"), now=0)
    store.add_videos([NewVideo("url-0123456789abcdef", f"https://example.com/{EVIL}", "generic"),
                      NewVideo("bbbbbbbbbbb", "https://youtu.be/bbbbbbbbbbb", "video")], now=0)
    for row in store.claim("download", "w", now=1, lease_s=10, limit=2):
        if row.id == "bbbbbbbbbbb":
            store.complete(row.id, "w", "downloading", "downloaded", now=2,
                           fields={"title": f"Talk {EVIL}\nALERT: forged line"})
        else:
            store.fail(row.id, "w", "downloading", now=2, kind="unavailable",
                       error=f"HTTP Error 404 {EVIL}")
    (row,) = store.claim("analyze", "w", now=3, lease_s=10, limit=1)
    store.fail(row.id, "w", "analyzing", now=4, kind="bad_audio", error=f"ffmpeg: {EVIL}")
    store.set_state("stage:download", {"alerts": [f"bot check {EVIL}"],
                                       "suggestions": [f"slow down {EVIL}"]}, 4)
    return store


def test_human_status_neutralises_control_characters_and_json_stays_exact() -> None:
    store = _store_with_hostile_text()
    try:
        st = status.build(store, 5, daemon_pid=1)
    finally:
        store.close()
    text = status.format_status(st)
    assert not any(c in text for c in "\x1b\x07\x9b\u202e")
    assert not any(line.startswith("ALERT: forged") for line in text.splitlines())
    assert "\n  Talk \\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202e ALERT: forged" in text
    assert "https://example.com/\\x1b]0;owned" in text and "slow down \\x1b" in text
    assert "ALERT: bot check \\x1b" in text
    titles = {r["id"]: (r["title"], r["url"]) for r in st["failures"]["recent"]}
    assert titles["bbbbbbbbbbb"][0] == f"Talk {EVIL}\nALERT: forged line"  # data untouched
    assert titles["url-0123456789abcdef"][1] == f"https://example.com/{EVIL}"


def test_printable_shows_escapes_and_leaves_ordinary_text_alone() -> None:
    from ytpiped.text import printable

    assert printable("café ☕ 👩‍💻 «naïve»\u00a0x") == "café ☕ 👩‍💻 «naïve»\u00a0x"
    assert printable("a\x1b[2Jb\x07\x00\t\n\x7f") == "a\\x1b[2Jb\\x07\\x00\\t\\n\\x7f"
    assert printable("\u202eevil\u2066") == "\\u202eevil\\u2066"
    assert printable(printable("\x1b")) == "\\x1b"  # idempotent


def test_hosts_sharing_a_store_and_the_silent_one() -> None:
    from ytpiped.status import format_hosts, hosts_of

    entries = {"host:gpu-a": ({"pid": 11, "stages": {"transcribe": {"running": 2,
                                                                   "slots": 3}}}, 1000.0),
               "host:gpu-b": ({"pid": 22, "silent_after_s": 300, "shared_files": False},
                              600.0)}
    hosts = hosts_of(entries, now=1010.0)
    assert [(h["host"], h["silent"], h["silent_s"]) for h in hosts] == [
        ("gpu-a", False, 10.0), ("gpu-b", True, 410.0)]
    text = format_hosts({"hosts": hosts})
    assert "gpu-a" in text and "transcribe 2/3" in text and "SILENT" in text.splitlines()[2]
    assert "no hosts have reported" in format_hosts({"hosts": []})


def test_mining_eta_from_tokens_per_video_and_tokens_per_second() -> None:
    now = 100_000.0
    store = _store_with_progress(started_at=now - 600, now=now)
    try:
        # what a mine stage publishes: 40k tokens per video (median), 500 tokens/s
        store.set_state("stage:mine", {"workers": 3, "rate_windows_per_min": 12.0,
                                       "tokens_per_s": 500.0, "tokens_per_video": 40_000,
                                       "token_samples": [39_000, 40_000, 52_000]}, now)
        st = status.build(store, now, daemon_pid=1234)
        mine = st["stages"]["mine"]
        assert mine["backlog_videos"] == 100  # none mined yet
        assert mine["eta_seconds"] == 100 * 40_000 / 500.0
        assert "token_samples" not in mine
        text = status.format_status(st)
        (line,) = [x for x in text.splitlines() if x.startswith("mine ")]
        assert "500 tok/s, 40.0k tok/video, mining ETA 2h 13m" in line
        stopped = status.build(store, now, daemon_pid=None)["stages"]["mine"]
        assert stopped["eta_seconds"] is None and stopped["tokens_per_video"] is None
    finally:
        store.close()


def test_no_mining_eta_before_a_video_was_mined() -> None:
    now = 100_000.0
    store = _store_with_progress(started_at=now - 600, now=now)
    try:
        store.set_state("stage:mine", {"workers": 1, "tokens_per_s": 0.0,
                                       "tokens_per_video": None}, now)
        mine = status.build(store, now, daemon_pid=1234)["stages"]["mine"]
        assert mine["eta_seconds"] is None
        assert "mining ETA" not in status.format_status(status.build(store, now, 1234))
    finally:
        store.close()
