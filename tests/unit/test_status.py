from __future__ import annotations

from pathlib import Path

from ytpiped import status
from ytpiped.status import clip
from ytpiped.store import NewVideo, SqliteDB
from ytpiped.testing.gpu_status import climbed_gpu_status


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
    assert "  retry: ytpiped retry --kind KIND (forbidden), or ytpiped retry VIDEO_ID" in text


def test_failure_lines_show_the_video_id_beside_its_title_or_url() -> None:
    store = SqliteDB(Path(":memory:"), now=0)
    try:
        store.add_videos([NewVideo("url-0123456789abcdef", "https://example.org/a.mp3",
                                   "generic"),
                          NewVideo("bbbbbbbbbbb", "https://youtu.be/bbbbbbbbbbb", "video")],
                         now=0)
        for row in store.claim("download", "w", now=1, lease_s=10, limit=2):
            if row.id == "bbbbbbbbbbb":
                store.complete(row.id, "w", "downloading", "downloaded", now=2,
                               fields={"title": "A talk"})
            else:
                store.fail(row.id, "w", "downloading", now=2, kind="unavailable", error="404")
        (row,) = store.claim("analyze", "w", now=3, lease_s=10, limit=1)
        store.fail(row.id, "w", "analyzing", now=4, kind="bad_audio", error="ffmpeg")
        text = status.format_status(status.build(store, 5, None))
    finally:
        store.close()
    lines = text.splitlines()
    assert "  url-0123456789abcdef https://example.org/a.mp3 [download/unavailable] 404" in lines
    assert "  bbbbbbbbbbb A talk [analyze/bad_audio] ffmpeg" in lines
    assert "  retry: ytpiped retry --kind KIND (bad_audio, unavailable), or ytpiped retry " \
           "VIDEO_ID; ytpiped ls --failed lists them all" in lines


def test_zero_states_are_hidden_and_the_data_dir_is_named() -> None:
    store = SqliteDB(Path(":memory:"), now=0)
    try:
        store.add_videos([NewVideo("aaaaaaaaaaa", "u", "video")], now=0)
        st = status.build(store, 3, None)
    finally:
        store.close()
    text = status.format_status({**st, "data_dir": "/srv/yt", "database": True})
    lines = text.splitlines()
    assert lines[0] == "data: /srv/yt"
    table = lines[lines.index("state            videos  " + " " * 24) + 1:]
    assert [x.split()[0] for x in table[:table.index("")]] == ["queued"]
    empty = status.format_status({**st, "videos": {"total": 0, "by_state": dict.fromkeys(
        st["videos"]["by_state"], 0)}, "data_dir": "/srv/none", "database": False})
    assert empty.splitlines()[0].startswith("data: /srv/none  (no database there")
    assert "no videos yet" in empty.splitlines()


def test_rates_with_nothing_running_are_labelled_history_not_live() -> None:
    now = 100_000.0
    store = _store_with_progress(started_at=now - 600, now=now)
    try:
        stopped = status.format_status(status.build(store, now, daemon_pid=None))
        idle = status.build(store, now, daemon_pid=1234)
        assert len(store.claim("download", "w", now=now, lease_s=10, limit=1)) == 1
        busy = status.build(store, now, daemon_pid=1234)
    finally:
        store.close()
    assert "done/h: completed in the last hour (history, not live: the daemon is not " \
           "running)" in stopped.splitlines()
    assert "audio s/s" not in stopped  # no daemon: no slots or live rates to show
    idle_text = status.format_status(idle)
    assert "(history, not live: no work is running)" in idle_text
    assert "audio s/s (learned, not live: nothing running)" in idle_text
    busy_text = status.format_status(busy)
    assert "not live" not in busy_text and "audio s/s" in busy_text


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
    assert "\n  bbbbbbbbbbb Talk \\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202e ALERT: forged" in text
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


def test_hosts_sharing_a_store_add_up_their_slots_and_rates() -> None:
    from ytpiped.status import merge_hosts

    entries = {
        "stage:transcribe@gpu-1": ({"gpu_slots": 2, "cpu_slots": 1, "rate_audio_s_per_s": 30.5,
                                    "policy": "ect", "alerts": ["disk low"]}, 10.0),
        "stage:transcribe@gpu-2": ({"gpu_slots": 3, "cpu_slots": 0, "rate_audio_s_per_s": 9.5,
                                    "policy": "fifo", "alerts": ["disk low"]}, 20.0),
        "stage:transcribe@gone": ({"gpu_slots": 8, "rate_audio_s_per_s": 99.0}, 5.0),
        "stage:download": ({"phase": "steady"}, 1.0),  # one host, SQLite
    }
    merged = merge_hosts(entries, silent={"gone"})
    tr = merged["transcribe"]
    assert (tr["gpu_slots"], tr["cpu_slots"], tr["rate_audio_s_per_s"]) == (5, 1, 40.0)
    assert tr["policy"] == "fifo"  # the newest host's own figures
    assert tr["alerts"] == ["disk low"]  # said once
    assert set(tr["hosts"]) == {"gpu-1", "gpu-2", "gone"}
    assert tr["hosts"]["gone"]["gpu_slots"] == 8  # shown, not counted: it is silent
    assert merged["download"] == {"phase": "steady"}


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


def test_status_shows_active_gpu_slots_of_the_ceiling_and_why() -> None:
    now = 100_000.0
    store = _store_with_progress(started_at=now - 600, now=now)
    try:
        store.set_state("stage:transcribe", climbed_gpu_status(), now)
        st = status.build(store, now, daemon_pid=1234)
        gpu = st["stages"]["transcribe"]["gpu"]["cuda:0"]
        assert (gpu["active"], gpu["ceiling"]) == (3, 6)
        text = status.format_status(st)
        (line,) = [x for x in text.splitlines() if x.startswith("  cuda:0:")]
        assert line.startswith("  cuda:0: 3 of 6 GPU slots active — 3 of 6: a slot more gave "
                               "+1% throughput (< 5%), so it was dropped"), line
        stopped = status.format_status(status.build(store, now, daemon_pid=None))
        assert "GPU slots active" not in stopped  # no daemon: no live slots
    finally:
        store.close()
