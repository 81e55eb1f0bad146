"""`ytpiped search`, `reindex`, `ls`, `show` and `logs` on a data dir with a real SQLite
store (the commands run in-process through cli.main)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ytpiped import listing
from ytpiped.cli import main
from ytpiped.store import Event, NewVideo, SqliteDB, db_path
from ytpiped.store.search import ClaimDoc, Passage, SearchDocs

YT = "dQw4w9WgXcQ"
GEN = "url-0123456789abcdef"


@pytest.fixture
def data(data_dir: Path) -> Path:
    db = SqliteDB(db_path(data_dir), now=0)
    try:
        db.add_videos([NewVideo(YT, f"https://www.youtube.com/watch?v={YT}", "video"),
                       NewVideo(GEN, "https://example.org/talk.mp3", "generic"),
                       NewVideo("failedvid01", "https://www.youtube.com/watch?v=failedvid01",
                                "video")], now=1_700_000_000)
        rows = db.claim("download", "w", now=1_700_000_010, lease_s=60, limit=3)
        meta = {YT: ("Solar power explained", "Energy Hour", "20240301", 3600.0),
                GEN: ("A talk on batteries", "Podcasts Inc", "20220115", 1800.0)}
        for r in rows:
            if r.id == "failedvid01":
                db.fail(r.id, "w", "downloading", now=1_700_000_020, kind="forbidden",
                        error="HTTP Error 403: Forbidden",
                        event=Event("failed", "download", "forbidden", "HTTP 403"))
                continue
            title, channel, date, length = meta[r.id]
            db.complete(r.id, "w", "downloading", "downloaded", now=1_700_000_020,
                        fields={"title": title, "channel": channel, "upload_date": date,
                                "duration_s": length}, event=Event("completed", "download"))
        db.index_video(YT, SearchDocs(
            claims=(ClaimDoc(0, "Solar panels got ten times cheaper", "prices fell since 2010",
                             "factual", 123.4, 130.0, 1, 9),
                    ClaimDoc(1, "Storage is the hard part", "batteries at night", "opinion",
                             600.0, 610.0, 2, 6)),
            passages=(Passage(0, 120.0, 150.0, "so solar panels are cheap now. and batteries "
                              "too", ((0, 120.0), (31, 131.5))),)))
        db.index_video(GEN, SearchDocs(claims=(
            ClaimDoc(0, "Batteries wear out", "after thousands of cycles", "factual", 75.0,
                     80.0, 1, 7),)))
    finally:
        db.close()
    (data_dir / "mining").mkdir()
    (data_dir / "mining" / f"{YT}.json").write_text("{}")
    return data_dir


def run(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_search_prints_ranked_hits_with_deep_links(data: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, data, "search", "batteries")
    assert code == 0
    lines = out.splitlines()
    # claims first on a tie of relative scores; the generic URL keeps its time beside it
    assert f"https://www.youtube.com/watch?v={YT}&t=131s" in out  # the segment's time
    assert "    https://example.org/talk.mp3  (at 01:15)" in lines
    assert any("**batteries**" in x.lower() for x in lines)
    code, out, _ = run(capsys, data, "search", "--json", "--in", "claims", "solar", "panels")
    (hit,) = json.loads(out)["hits"]
    assert {k: hit[k] for k in ("kind", "video_id", "title", "channel", "upload_date", "link",
                                "time", "claim", "rank")} == {
        "kind": "claim", "video_id": YT, "title": "Solar power explained",
        "channel": "Energy Hour", "upload_date": "2024-03-01",
        "link": f"https://www.youtube.com/watch?v={YT}&t=123s", "time": "02:03",
        "claim": 0, "rank": 1}
    assert hit["snippet"] == "**Solar panels** got ten times cheaper"


def test_search_filters_by_channel_and_date(data: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def ids(*args: str) -> list[str]:
        code, out, _ = run(capsys, data, "search", "--json", "--in", "claims", *args)
        assert code == 0
        return [h["video_id"] for h in json.loads(out)["hits"]]

    assert sorted(ids("batteries")) == sorted([YT, GEN])
    assert ids("batteries", "--channel", "podcasts inc") == [GEN]
    assert ids("batteries", "--since", "2023-01-01") == [YT]
    assert ids("batteries", "--limit", "1") in ([YT], [GEN])


@pytest.mark.parametrize("query", ['"solar', "solar OR", "(solar", "solar AND", "NOT",
                                   "solar -(wind)x)"])
def test_a_query_syntax_error_exits_2_with_a_message(
        data: Path, capsys: pytest.CaptureFixture[str], query: str) -> None:
    code, out, err = run(capsys, data, "search", query)
    assert code == 2 and out == ""
    assert err.startswith("error: search query") and "Traceback" not in err


def test_bad_since_and_missing_database(data_dir: Path, data: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    code, _, err = run(capsys, data, "search", "x", "--since", "March")
    assert code == 2 and "YYYY-MM-DD" in err
    empty = tmp_path / "empty"
    for command in (["search", "x"], ["ls"], ["show", YT], ["logs"]):
        code, _, err = run(capsys, empty, *command)
        assert code == 1 and f"no database in {empty}" in err, command


def test_reindex_and_an_empty_index(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, data, "reindex", "--json")
    # the mining file is `{}` and there are no transcripts: no claims and no passages; no
    # metadata files either: each video's document from the title and channel it kept
    assert code == 0 and json.loads(out) == {"videos": 2, "passages": 0, "claims": 0,
                                             "metadata": 2}
    for where in ("claims", "transcripts"):
        code, out, _ = run(capsys, data, "search", "--in", where, "solar")
        assert code == 0 and "the search index is empty" in out
    code, out, _ = run(capsys, data, "search", "solar")
    assert code == 0 and "the search index is empty" not in out and "**Solar**" in out


def test_search_in_videos_finds_a_word_of_the_metadata_with_the_video_link(
        data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data / "meta").mkdir()
    (data / "meta" / f"{YT}.json").write_text(json.dumps({
        "id": YT, "title": "Solar power explained", "channel": "Energy Hour",
        "description": "How a photovoltaic cell turns light into current.",
        "tags": ["renewables", "physics"],
        "chapters": [{"start": 0.0, "end": 90.0, "title": "Inverters"}]}))
    code, out, _ = run(capsys, data, "reindex")
    assert code == 0 and out.strip() == ("indexed 2 videos: 0 transcript passages, 0 claims, "
                                         "2 videos' metadata")
    code, out, _ = run(capsys, data, "search", "--in", "videos", "photovoltaic")
    assert code == 0
    assert out.splitlines() == [
        " 1. video · Solar power explained · Energy Hour · 2024-03-01",
        "    description: How a **photovoltaic** cell turns light into current.",
        f"    https://www.youtube.com/watch?v={YT}"]
    code, out, _ = run(capsys, data, "search", "--json", "inverters")  # `all` holds videos
    got = json.loads(out)
    assert (got["in"], len(got["hits"])) == ("all", 1)
    hit = got["hits"][0]
    assert {k: hit[k] for k in ("kind", "video_id", "title", "channel", "upload_date", "url",
                                "link", "start_s", "time", "field", "snippet", "text")} == {
        "kind": "video", "video_id": YT, "title": "Solar power explained",
        "channel": "Energy Hour", "upload_date": "2024-03-01",
        "url": f"https://www.youtube.com/watch?v={YT}",
        "link": f"https://www.youtube.com/watch?v={YT}", "start_s": None, "time": None,
        "field": "chapters", "snippet": "**Inverters**", "text": "Inverters"}

    def ids(*args: str) -> list[str]:
        code, out, _ = run(capsys, data, "search", "--json", "--in", "videos", *args)
        assert code == 0
        return [h["video_id"] for h in json.loads(out)["hits"]]

    # a word of a title (GEN: from its row, it has no metadata file), the filters
    assert ids("batteries") == [GEN]
    assert ids("renewables OR batteries", "--channel", "energy hour") == [YT]
    assert ids("renewables OR batteries", "--since", "2023-01-01") == [YT]
    code, out, _ = run(capsys, data, "search", "--in", "videos", "batteries")
    assert "    https://example.org/talk.mp3" in out.splitlines()  # no time beside it


def test_ls_lists_and_filters(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, data, "ls")
    header, *lines = out.splitlines()
    assert code == 0 and header.split()[:5] == ["id", "state", "tries", "length", "channel"]
    by_id = {x.split()[0]: x for x in lines}
    assert sorted(by_id) == sorted([YT, GEN, "failedvid01"])
    assert by_id[YT].split()[1:4] == ["downloaded", "0", "1:00:00"]
    assert by_id[YT].endswith("Solar power explained")
    assert by_id["failedvid01"].split()[1:3] == ["failed:forbidden", "1"]
    code, out, _ = run(capsys, data, "ls", "--json", "--failed")
    (row,) = json.loads(out)
    assert (row["id"], row["state"], row["error_kind"], row["attempts"], row["link"]) == \
        ("failedvid01", "failed", "forbidden", 1,
         "https://www.youtube.com/watch?v=failedvid01")
    assert set(row) >= {"id", "url", "kind", "state", "title", "channel", "upload_date",
                        "duration_s", "attempts", "failed_stage", "error_kind", "error"}
    for args, want in ((["--kind", "forbidden"], ["failedvid01"]),
                       (["--type", "generic"], [GEN]),
                       (["--channel", "ENERGY HOUR"], [YT]),
                       (["--state", "downloaded", "--limit", "1"], [YT]),
                       (["--kind", "network"], [])):
        code, out, _ = run(capsys, data, "ls", "--json", *args)
        assert [r["id"] for r in json.loads(out)] == want, args
    code, _, err = run(capsys, data, "ls", "--failed", "--state", "done")
    assert code == 2 and "pick one" in err


def test_show_a_video(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, data, "show", YT)
    assert code == 0
    assert out.startswith("Solar power explained\n")
    assert "  channel   Energy Hour" in out and "  uploaded  2024-03-01" in out
    assert "claims: 2 (top by rank)" in out and f"v={YT}&t=123s" in out
    assert "download completed" in out and f"{data}/mining/{YT}.json" in out
    code, out, _ = run(capsys, data, "show", "--json", "--claims", "1", YT)
    got = json.loads(out)
    assert set(got) == {"video", "files", "history", "claims"}
    assert got["video"]["id"] == YT and got["video"]["title"] == "Solar power explained"
    assert got["files"] == {"mining": str(data / "mining" / f"{YT}.json")}
    assert [(e["stage"], e["event"]) for e in got["history"]] == [("download", "completed")]
    assert got["claims"]["total"] == 2 and [c["text"] for c in got["claims"]["top"]] == \
        ["Solar panels got ten times cheaper"]
    code, out, _ = run(capsys, data, "show", "failedvid01")
    assert "error     [download/forbidden] HTTP Error 403: Forbidden" in out
    assert "retry     ytpiped retry failedvid01" in out
    code, _, err = run(capsys, data, "show", "nosuchvideo")
    assert code == 1 and "no video 'nosuchvideo'" in err


def test_logs_filter_and_json(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, data, "logs")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert f"2023-11-14 22:13:40Z  {YT}  download completed" in lines
    (failed,) = [x for x in lines if "failedvid01" in x]
    assert failed.endswith("download failed  [forbidden] HTTP 403")
    code, out, _ = run(capsys, data, "logs", "--json", "--kind", "forbidden")
    (e,) = [json.loads(x) for x in out.splitlines()]
    assert {k: e[k] for k in ("video_id", "stage", "event", "kind", "message", "time")} == {
        "video_id": "failedvid01", "stage": "download", "event": "failed",
        "kind": "forbidden", "message": "HTTP 403", "time": "2023-11-14 22:13:40Z"}
    code, out, _ = run(capsys, data, "logs", "--video", GEN, "--limit", "5")
    assert len(out.splitlines()) == 1 and GEN in out


def test_follow_yields_events_as_they_are_written(data: Path) -> None:
    db = SqliteDB(db_path(data), now=0)
    try:
        last = db.event_log()[-1].id
        writes = iter([("first", None), ("second", "failedvid01")])
        polls = 0

        def wait() -> bool:  # each poll: write one event, then stop
            nonlocal polls
            polls += 1
            event, vid = next(writes, (None, None))
            if event is None:
                return False
            db.record_event(2e9, event, video_id=vid, stage="mine")
            return True

        seen = [e.event for e in listing.follow(db, wait=wait, after=last)]
        assert seen == ["first", "second"] and polls == 3
        only = [e.event for e in listing.follow(db, wait=lambda: False, after=last,
                                                video_id="failedvid01")]
        assert only == ["second"]
    finally:
        db.close()


def test_retry_with_an_unknown_kind_lists_the_valid_ones(
        data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, data, "retry", "--kind", "forbiden")
    assert code == 2 and out == ""
    assert err.strip() == "error: retry --kind 'forbiden': no failed video has that kind; " \
                          "the kinds of the failed videos: forbidden (1)"
    code, out, _ = run(capsys, data, "retry", "--kind", "forbidden")
    assert code == 0 and out.strip() == "re-queued 1 failed video"
    code, _, err = run(capsys, data, "retry", "--kind", "forbidden")
    assert code == 2 and err.strip().endswith("no video has failed")
