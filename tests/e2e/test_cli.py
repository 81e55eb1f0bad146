from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import cli, counts, env_for


def test_add_reports_counts_and_invalid_lines(data_dir: Path, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("# my list\n"
                    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s\n"
                    "\n"
                    "https://youtu.be/dQw4w9WgXcQ?si=x\n"
                    "not a url at all\n"
                    "https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG\n"
                    "ftp://example.com/a.mp3\n")
    r = cli(data_dir, "add", str(urls))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "added 2, duplicate 1, invalid 2"
    assert f"{urls}:5: contains spaces" in lines[1]
    assert f"{urls}:7: unsupported scheme 'ftp'" in lines[2]
    again = cli(data_dir, "add", "--json", str(urls))
    report = json.loads(again.stdout)
    assert (report["added"], report["duplicate"], len(report["invalid"])) == (0, 3, 2)
    assert [i["line"] for i in report["invalid"]] == [5, 7]


@pytest.mark.parametrize("make,message", [
    (lambda p: p, "is a directory"),
    (lambda p: p / "missing.txt", "no such file"),
    (lambda p: (p / "latin1.txt").write_bytes(b"https://youtu.be/dQw4w9WgXcQ\ncaf\xe9\n")
     and p / "latin1.txt", "not UTF-8 text (invalid byte at line 2)"),
])
def test_bad_input_files_add_nothing(data_dir: Path, tmp_path: Path, make: object,
                                     message: str) -> None:
    good = tmp_path / "good.txt"
    good.write_text("https://youtu.be/aaaaaaaaaaa\n")
    bad = make(tmp_path)  # type: ignore[operator]
    r = cli(data_dir, "add", str(good), str(bad))
    assert r.returncode == 2
    assert message in r.stderr and str(bad) in r.stderr
    assert sum(counts(data_dir).values()) == 0  # nothing partial


def test_two_add_processes_at_once_never_duplicate(data_dir: Path, tmp_path: Path) -> None:
    ids = [f"{i:011d}" for i in range(20_000)]
    f = tmp_path / "ids.txt"
    f.write_text("\n".join(ids) + "\n")
    procs = [subprocess.Popen([sys.executable, "-m", "ytpiped", "add", "--json", str(f)],
                              env=env_for(data_dir), stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["added"] for r in reports) == len(ids)
    assert sum(r["duplicate"] for r in reports) == len(ids)
    assert counts(data_dir)["queued"] == len(ids)


def test_status_without_database_or_daemon(data_dir: Path) -> None:
    r = cli(data_dir, "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["videos"]["total"] == 0
    assert set(st["videos"]["by_state"]) == {
        "queued", "downloading", "downloaded", "analyzing", "analyzed", "transcribing",
        "transcribed", "mining", "mined", "evaluating", "done", "failed", "skipped"}
    assert st["stages"]["download"]["phase"] == "idle"
    assert st["stages"]["download"]["next_download_at"] is None
    assert {"gpu_slots", "cpu_slots", "rate_audio_s_per_s"} <= set(st["stages"]["transcribe"])
    assert {"workers", "rate_windows_per_min"} <= set(st["stages"]["mine"])
    assert st["daemon"]["running"] is False and st["daemon"]["pid"] is None
    assert st["eta_seconds"] is None and st["suggestions"] == [] and st["failures"]["by_kind"] == {}
    assert st["transcripts"]["by_source"] == {}
    assert st["follows"] == {"followed": 0, "failing": 0}
    assert not (data_dir / "ytpiped.db").exists()  # status never creates the database
    human = cli(data_dir, "status")
    assert "daemon: not running" in human.stdout and "no videos yet" in human.stdout
    assert f"data: {data_dir}  (no database there" in human.stdout


def test_broken_config_exits_2_naming_key(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[transcribe]\nstop_cpu_at_progress = 1.5\n")
    for args in (["--config", str(bad), "status"], ["config", "check", str(bad)]):
        r = cli(data_dir, *args)
        assert r.returncode == 2
        assert "transcribe.stop_cpu_at_progress" in r.stderr and str(bad) in r.stderr
    good = tmp_path / "good.toml"
    good.write_text("[download]\nmax_attempts = 2\n")
    assert cli(data_dir, "config", "check", str(good)).returncode == 0
    shown = json.loads(cli(data_dir, "--config", str(good), "config", "show", "--json").stdout)
    assert shown["download.max_attempts"] == {"value": 2, "source": str(good)}
    assert shown["data_dir"]["source"] == "env YTPIPED_DATA_DIR"
    assert shown["download.low_water"]["source"] == "default"


def test_retry_requeues_failed(data_dir: Path) -> None:
    from ytpiped.store import NewVideo, SqliteDB, db_path

    s = SqliteDB(db_path(data_dir), now=0)
    s.add_videos([NewVideo("failedvid01", "u", "video"), NewVideo("failedvid02", "u", "video")],
                 now=0)
    for row in s.claim("download", "w", now=1, lease_s=10, limit=2):
        s.fail(row.id, "w", "downloading", now=2, kind="network" if row.id.endswith("1")
               else "unavailable", error="x")
    s.close()
    r = cli(data_dir, "retry", "--kind", "network")
    assert r.stdout.strip() == "re-queued 1 failed video"
    assert counts(data_dir)["queued"] == 1 and counts(data_dir)["failed"] == 1


def test_remine_requeues_only_what_a_new_prompt_or_model_made_stale(data_dir: Path) -> None:
    from ytpiped import config
    from ytpiped.files import atomic_write_json
    from ytpiped.mining import prompts
    from ytpiped.states import STAGES
    from ytpiped.store import NewVideo, SqliteDB, db_path

    ids = ["current0001", "oldeval0001", "oldmine0001", "nooutput001"]
    s = SqliteDB(db_path(data_dir), now=0)
    s.add_videos([NewVideo(i, "u", "video") for i in ids], now=0)
    for st in STAGES.values():  # through every stage to done
        for row in s.claim(st.name, "w", now=1, lease_s=10, limit=len(ids)):
            s.complete(row.id, "w", st.running.value, st.finished.value, now=2)
    s.close()
    model = config.load(flags={"data_dir": str(data_dir)}).mine.model
    current = {"model": model, "eval_model": model, "prompt_version": prompts.MINE_PROMPT_VERSION,
               "eval_prompt_version": prompts.EVAL_PROMPT_VERSION}
    for vid, changes in (("current0001", {}), ("oldeval0001", {"eval_prompt_version": "0ld"}),
                         ("oldmine0001", {"prompt_version": "0ld"})):
        atomic_write_json(data_dir / "mining" / f"{vid}.json",
                          {"video_id": vid, "claims": [], "provenance": {**current, **changes}})

    dry = cli(data_dir, "remine", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == \
        "4 done videos: 3 to mine again (2 with windows to mine, 1 evaluation only)"
    assert f"oldeval0001: evaluation prompt 0ld -> {prompts.EVAL_PROMPT_VERSION}" in dry.stdout
    assert "nooutput001: no mining output" in dry.stdout and "current0001" not in dry.stdout
    assert counts(data_dir)["done"] == 4  # a dry run changes nothing

    r = cli(data_dir, "remine")
    assert r.stdout.splitlines()[-1] == "re-queued 3 videos for mining"
    assert counts(data_dir)["done"] == 1 and counts(data_dir)["transcribed"] == 3
    s = SqliteDB(db_path(data_dir), now=3)
    try:
        assert s.get("current0001").state == "done"  # type: ignore[union-attr]
        reasons = [e for e in s.events_of("oldmine0001") if e[2] == "remine"]
        assert len(reasons) == 1 and "mining prompt 0ld" in str(reasons[0])
    finally:
        s.close()

    named = cli(data_dir, "remine", "--all", "current0001", "oldeval0001")
    assert "oldeval0001: transcribed (only done videos" in named.stderr
    assert named.stdout.splitlines()[-1] == "re-queued 1 video for mining"
    assert counts(data_dir)["done"] == 0


def test_help_mentions_defaults_and_env(data_dir: Path) -> None:
    r = cli(data_dir, "status", "--help")
    assert r.returncode == 0
    assert "YTPIPED_<SECTION>__<KEY>" in r.stdout and "default: 2.0" in r.stdout


def test_stray_variable_warns_once_and_only_config_check_refuses_it(data_dir: Path,
                                                                     tmp_path: Path) -> None:
    stray = {"YTPIPED_NOT_A_KEY": "1"}
    r = cli(data_dir, "status", "--json", extra_env=stray)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["videos"]["total"] == 0  # stdout stays pure JSON
    assert r.stderr.count("YTPIPED_NOT_A_KEY") == 1 and r.stderr.startswith("warning: ")
    good = tmp_path / "good.toml"
    good.write_text("[download]\nmax_attempts = 2\n")
    check = cli(data_dir, "config", "check", str(good), extra_env=stray)
    assert check.returncode == 2 and "YTPIPED_NOT_A_KEY: unknown key" in check.stderr
    assert cli(data_dir, "config", "check", str(good)).returncode == 0


@pytest.mark.parametrize("body,key", [
    ("[mine]\nhosts = []\n", "mine.hosts"),
    ("[download]\ndelay_steady_s = [nan, nan]\n", "download.delay_steady_s"),
    ("[download]\ndelay_steady_s = [0, inf]\n", "download.delay_steady_s"),
])
def test_config_check_refuses_empty_hosts_and_non_finite_numbers(data_dir: Path, tmp_path: Path,
                                                                 body: str, key: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(body)
    r = cli(data_dir, "config", "check", str(bad))
    assert r.returncode == 2 and key in r.stderr and str(bad) in r.stderr


def test_missing_cookies_file_stops_config_check_and_run_before_any_download(
        data_dir: Path, tmp_path: Path) -> None:
    gone = tmp_path / "cookies.txt"
    conf = tmp_path / "c.toml"
    conf.write_text(f'[download]\ncookies_file = "{gone}"\n')
    check = cli(data_dir, "config", "check", str(conf))
    assert check.returncode == 2
    assert f"key 'download.cookies_file': {gone} does not exist" in check.stderr
    r = subprocess.run([sys.executable, "-m", "ytpiped", "--config", str(conf), "run"],
                       env=env_for(data_dir), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "download.cookies_file" in r.stderr and str(gone) in r.stderr
    assert not (data_dir / "ytpiped.db").exists()  # refused before the daemon started
    assert cli(data_dir, "--config", str(conf), "status").returncode == 0  # status unaffected


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_add_dev_zero_fails_clearly_with_bounded_memory_and_adds_nothing(
        data_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("https://youtu.be/aaaaaaaaaaa\n")
    r = subprocess.run([sys.executable, "-m", "ytpiped", "add", str(good), "/dev/zero"],
                       env=env_for(data_dir), capture_output=True, text=True, timeout=60,
                       preexec_fn=_limit_memory)
    assert r.returncode == 2, r.stderr
    assert "/dev/zero: line 1 runs past 1 MiB without a line break" in r.stderr
    assert sum(counts(data_dir).values()) == 0  # nothing partial


def test_add_from_a_fifo_with_no_writer_times_out(data_dir: Path, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)
    r = subprocess.run([sys.executable, "-m", "ytpiped", "--set", "add.read_timeout_s=0.3",
                        "add", str(fifo)], env=env_for(data_dir), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert f"{fifo}: no input for 0.3 s" in r.stderr and "add.read_timeout_s" in r.stderr


def test_add_strips_a_bom_on_stdin_and_refuses_control_characters(data_dir: Path) -> None:
    r = cli(data_dir, "add", "--json", "-", input="\ufeffhttps://youtu.be/aaaaaaaaaaa\n"
                                                  "https://example.com/\x1b]0;owned\x07\n"
                                                  "https://youtu.be/bbbbbbbbbbb\x00\n")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["added"], report["duplicate"]) == (1, 0)
    assert [(i["line"], i["reason"]) for i in report["invalid"]] == [
        (2, "contains a control or invisible character ('\\x1b')"),
        (3, "contains a control or invisible character ('\\x00')")]
    assert report["invalid"][0]["text"] == "https://example.com/\x1b]0;owned\x07"  # JSON: exact
    assert counts(data_dir)["queued"] == 1


def test_human_outputs_never_print_terminal_escapes(data_dir: Path, tmp_path: Path) -> None:
    from ytpiped.store import NewVideo, SqliteDB, db_path

    evil = "\x1b]0;owned\x07\x1b[2J"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"https://example.com/{evil}\n")
    added = cli(data_dir, "add", str(urls))
    assert added.returncode == 0 and "invalid 1" in added.stdout
    assert "\x1b" not in added.stdout and "https://example.com/\\x1b]0;owned\\x07" in added.stdout
    s = SqliteDB(db_path(data_dir), now=0)
    s.add_videos([NewVideo("evilvideo01", "https://youtu.be/evilvideo01", "video")], now=0)
    (row,) = s.claim("download", "w", now=1, lease_s=10, limit=1)
    s.complete(row.id, "w", "downloading", "downloaded", now=2, fields={"title": f"T {evil}"})
    (row,) = s.claim("analyze", "w", now=3, lease_s=10, limit=1)
    s.fail(row.id, "w", "analyzing", now=4, kind="bad_audio", error=f"boom {evil}")
    s.close()
    human = cli(data_dir, "status")
    assert human.returncode == 0, human.stderr
    assert "\x1b" not in human.stdout and "\x07" not in human.stdout
    assert "T \\x1b]0;owned\\x07\\x1b[2J" in human.stdout
    (recent,) = json.loads(cli(data_dir, "status", "--json").stdout)["failures"]["recent"]
    assert (recent["title"], recent["error"]) == (f"T {evil}", f"boom {evil}")


def _database_with_rows(data_dir: Path, n: int = 3000) -> Path:
    r = cli(data_dir, "add", "-", input="".join(f"{i:011d}\n" for i in range(n)))
    assert r.returncode == 0, r.stderr
    return data_dir / "ytpiped.db"


def _damage(db: Path, how: str) -> None:
    if how == "garbage":
        db.write_bytes(b"this is not a database, it was overwritten\n" * 200)
    elif how == "truncated":
        with db.open("r+b") as fh:
            fh.truncate(db.stat().st_size // 2)
    else:  # a page in the middle overwritten: the file still opens
        with db.open("r+b") as fh:
            fh.seek(db.stat().st_size // 2)
            fh.write(b"\xff" * 8192)


@pytest.mark.parametrize("how", ["garbage", "truncated", "overwritten page"])
def test_damaged_database_status_and_run_name_the_file_and_the_fix(data_dir: Path,
                                                                   how: str) -> None:
    db = _database_with_rows(data_dir)
    _damage(db, how)
    for args in (["status"], ["status", "--json"], ["run"]):
        r = cli(data_dir, *args)
        assert r.returncode == 1, (args, r.stderr)
        assert "Traceback" not in r.stdout + r.stderr, args
        errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, r.stderr
        assert f"{db} is damaged" in errors[0]
        assert "ytpiped db check" in errors[0] and "ytpiped db backup" in errors[0]
        if args[0] == "status":
            assert r.stderr.strip() == errors[0]  # one line, nothing else
    assert not (data_dir / "ytpiped.sock").exists()


def test_db_check_lists_the_problems(data_dir: Path) -> None:
    db = _database_with_rows(data_dir)
    ok = cli(data_dir, "db", "check")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{db}: ok")
    report = json.loads(cli(data_dir, "db", "check", "--json").stdout)
    assert report == {"database": str(db), "ok": True, "problems": [],
                      "videos": 3000, "schema_version": report["schema_version"]}
    # an index that no longer matches its table: the file opens, only the check sees it
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX videos_ready ON videos (url)' "
                 "WHERE name = 'videos_ready'")
    conn.close()
    bad = cli(data_dir, "db", "check")
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    lines = bad.stdout.splitlines()
    assert lines[0] == f"{db}: damaged, 100 problems found:"
    assert lines[1:3] == ["  row 1 missing from index videos_ready",
                          "  row 2 missing from index videos_ready"]
    assert "ytpiped db backup" in lines[-1]  # what to do next
    report = json.loads(cli(data_dir, "db", "check", "--json").stdout)
    assert report["ok"] is False and len(report["problems"]) == 100
    _damage(db, "overwritten page")
    report = json.loads(cli(data_dir, "db", "check", "--json").stdout)
    assert report["ok"] is False
    # the page problems come on top of the index broken above (where the overwritten page
    # falls depends on the schema's layout)
    damage = [p for p in report["problems"] if "page" in p.lower() or "malformed" in p]
    assert damage and all(p in damage or "videos_ready" in p for p in report["problems"])
    _damage(db, "garbage")
    report = json.loads(cli(data_dir, "db", "check", "--json").stdout)
    assert report["ok"] is False and report["problems"] == ["file is not a database"]


def test_db_check_without_a_database_says_so(data_dir: Path) -> None:
    r = cli(data_dir, "db", "check")
    assert r.returncode == 2
    assert f"{data_dir / 'ytpiped.db'}: no database" in r.stderr
    assert not (data_dir / "ytpiped.db").exists()


def test_db_backup_refuses_to_overwrite_and_restores(data_dir: Path, tmp_path: Path) -> None:
    db = _database_with_rows(data_dir, 500)
    backup = tmp_path / "backup.db"
    backup.write_text("precious")
    r = cli(data_dir, "db", "backup", str(backup))
    assert r.returncode == 2
    assert str(backup) in r.stderr and "--force" in r.stderr
    assert backup.read_text() == "precious"
    r = cli(data_dir, "db", "backup", "--force", str(backup))
    assert r.returncode == 0, r.stderr
    assert "500 videos" in r.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".backup")] == []
    # restore, as README says: stop the daemon, copy the backup, drop the old WAL files
    _damage(db, "garbage")
    (data_dir / "ytpiped.db-wal").write_bytes(b"stale")
    assert cli(data_dir, "status").returncode == 1
    shutil.copyfile(backup, db)
    for suffix in ("-wal", "-shm"):
        (data_dir / f"ytpiped.db{suffix}").unlink(missing_ok=True)
    assert {k: n for k, n in counts(data_dir).items() if n} == {"queued": 500}
    st = json.loads(cli(data_dir, "status", "--json").stdout)
    assert st["videos"]["by_state"]["queued"] == 500


def test_db_backup_of_a_damaged_database_fails_and_writes_nothing(data_dir: Path,
                                                                  tmp_path: Path) -> None:
    _damage(_database_with_rows(data_dir), "overwritten page")
    backup = tmp_path / "backup.db"
    r = cli(data_dir, "db", "backup", str(backup))
    assert r.returncode == 1
    assert "is damaged" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [data_dir]


def test_add_with_a_priority_puts_those_first(data_dir: Path) -> None:
    from ytpiped.store import SqliteDB, db_path

    assert cli(data_dir, "add", "aaaaaaaaaaa", "bbbbbbbbbbb").returncode == 0
    r = cli(data_dir, "add", "--priority", "7", "ccccccccccc", "bbbbbbbbbbb")
    assert r.returncode == 0 and "added 1, duplicate 1" in r.stdout
    s = SqliteDB(db_path(data_dir), readonly=True)
    try:
        got = {v: s.get(v).priority for v in ("aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc")}
    finally:
        s.close()
    assert got == {"aaaaaaaaaaa": 0, "bbbbbbbbbbb": 7, "ccccccccccc": 7}
    bad = cli(data_dir, "add", "--priority", "high", "ddddddddddd")
    assert bad.returncode == 2 and "--priority" in bad.stderr
