"""The CLI as a subprocess: --json reports of retry, remine and export, `config show --toml`
that `config check` accepts, every configuration error at once, the XDG config file, and a
`status` that asks the running daemon with the standard library alone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.helpers import cli, counts, env_for, start_daemon, wait_for
from ytpiped import control_client
from ytpiped.files import atomic_write_json
from ytpiped.states import STAGES
from ytpiped.store import NewVideo, SqliteDB, db_path


def _videos(data_dir: Path, ids: list[str], *, to_done: bool) -> None:
    s = SqliteDB(db_path(data_dir), now=0)
    s.add_videos([NewVideo(i, "u", "video") for i in ids], now=0)
    if to_done:
        for st in STAGES.values():
            for row in s.claim(st.name, "w", now=1, lease_s=10, limit=len(ids)):
                s.complete(row.id, "w", st.running.value, st.finished.value, now=2)
    s.close()


def test_retry_json(data_dir: Path) -> None:
    _videos(data_dir, ["failedvid01", "failedvid02"], to_done=False)
    s = SqliteDB(db_path(data_dir), now=0)
    for row in s.claim("download", "w", now=1, lease_s=10, limit=2):
        s.fail(row.id, "w", "downloading", now=2, kind="network", error="x")
    s.close()
    r = cli(data_dir, "retry", "--json", "--kind", "network", "failedvid01")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"requeued": 1, "skipped": 0, "stage": None, "kind": "network",
                                    "video_ids": ["failedvid01"]}
    r = cli(data_dir, "retry", "--json", "--stage", "download")
    assert json.loads(r.stdout) == {"requeued": 1, "skipped": 0, "stage": "download", "kind": None,
                                    "video_ids": []}
    assert counts(data_dir)["queued"] == 2


def test_remine_json(data_dir: Path) -> None:
    _videos(data_dir, ["nooutput001", "nooutput002"], to_done=True)
    _videos(data_dir, ["stillnew001"], to_done=False)
    dry = cli(data_dir, "remine", "--json", "--dry-run", "nooutput001", "stillnew001",
              "unknownvid1")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {
        "done": 1, "dry_run": True, "requeued": 0,
        "stale": [{"id": "nooutput001", "reason": "no mining output", "windows": True}],
        "not_done": [{"id": "stillnew001", "state": "queued"},
                     {"id": "unknownvid1", "state": None}]}
    assert counts(data_dir)["done"] == 2  # a dry run changes nothing
    r = cli(data_dir, "remine", "--json")
    report = json.loads(r.stdout)
    assert report["requeued"] == 2 and report["done"] == 2 and not report["dry_run"]
    assert [s["id"] for s in report["stale"]] == ["nooutput001", "nooutput002"]
    assert counts(data_dir)["transcribed"] == 2


def test_export_json(data_dir: Path, tmp_path: Path) -> None:
    claims = [{"text": "Sleep stores memories.", "start": 1.0}, {"text": "Walk.", "start": 2.0}]
    atomic_write_json(data_dir / "mining" / "exportvid01.json",
                      {"video_id": "exportvid01", "claims": claims, "evaluation": {}})
    out = tmp_path / "out"
    r = cli(data_dir, "export", "--json", "--out", str(out), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"claims": 2, "out": str(out), "format": "jsonl",
                                    "videos": 1, "unchanged": 0,
                                    "files": ["claims.jsonl", "evaluations.jsonl"]}
    assert len((out / "claims.jsonl").read_text().splitlines()) == 2


def test_config_show_toml_is_a_file_config_check_accepts(data_dir: Path,
                                                         tmp_path: Path) -> None:
    given = tmp_path / "given.toml"
    given.write_text('[download]\nmax_attempts = 2\nformat = "bestaudio\\"[x]"\n'
                     '[daemon]\numask = 0o077\n')
    shown = cli(data_dir, "--config", str(given), "--set", "mine.num_ctx=4096", "config", "show",
                "--toml")
    assert shown.returncode == 0, shown.stderr
    assert "num_ctx = 4096  # flag mine.num_ctx" in shown.stdout.splitlines()
    assert f"max_attempts = 2  # {given}" in shown.stdout.splitlines()
    effective = tmp_path / "effective.toml"
    effective.write_text(shown.stdout)
    check = cli(data_dir, "config", "check", str(effective))
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == f"{effective}: ok"
    as_json = json.loads(cli(data_dir, "--config", str(given), "--set", "mine.num_ctx=4096",
                             "config", "show", "--json").stdout)
    again = json.loads(cli(data_dir, "--config", str(effective), "config", "show",
                           "--json").stdout)
    assert {k: v["value"] for k, v in again.items()} == \
        {k: v["value"] for k, v in as_json.items()}


def test_config_check_reports_every_error_at_once(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[download]\nmax_atempts = 3\nlow_water = -1\n[mine]\nnum_ctx = 1\n")
    r = cli(data_dir, "--set", "transcribe.policy=fastest", "config", "check", str(bad),
            extra_env={"YTPIPED_DAEMON__METRICS_PORT": "-5"})
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0] == "error: 5 configuration errors:"
    assert lines[1] == (f"  {bad}: unknown key 'download.max_atempts' (did you mean "
                        "'download.max_attempts'? see `ytpiped config show` for the valid keys)")
    assert lines[2].startswith(f"  {bad}: key 'download.low_water': expected")
    assert lines[3].startswith(f"  {bad}: key 'mine.num_ctx': expected")
    assert lines[4].startswith("  env YTPIPED_DAEMON__METRICS_PORT: key 'daemon.metrics_port'")
    assert lines[5].startswith("  flag transcribe.policy: key 'transcribe.policy'")


def test_config_is_found_in_xdg_config_home(data_dir: Path, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    user = xdg / "ytpiped" / "ytpiped.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[download]\nmax_attempts = 4\n")
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path / "home")}
    shown = json.loads(cli(data_dir, "config", "show", "--json", extra_env=env).stdout)
    assert shown["download.max_attempts"] == {"value": 4, "source": str(user)}
    check = cli(data_dir, "config", "check", extra_env=env)
    assert check.returncode == 0 and check.stdout.strip() == f"{user}: ok"
    home = tmp_path / "home" / ".config" / "ytpiped" / "ytpiped.toml"
    home.parent.mkdir(parents=True)
    home.write_text("[download]\nmax_attempts = 3\n")
    env.pop("XDG_CONFIG_HOME")
    shown = json.loads(cli(data_dir, "config", "show", "--json", extra_env=env).stdout)
    assert shown["download.max_attempts"] == {"value": 3, "source": str(home)}


HEAVY = ("aiohttp", "structlog", "sqlite3", "numpy", "yt_dlp", "ytpiped.store", "ytpiped.logs",
         "ytpiped.control", "asyncio")


def test_status_asks_the_running_daemon_without_heavy_imports(data_dir: Path,
                                                              tmp_path: Path) -> None:
    _videos(data_dir, ["statusvid01"], to_done=False)
    daemon = start_daemon(data_dir, tmp_path / "daemon.log")
    try:
        wait_for(lambda: control_client.get(data_dir, "/healthz") == b"ok\n", 60,
                 "the daemon's socket")
        probe = ("import sys; from ytpiped import cli; rc = cli.main(['status', '--json']); "
                 f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
                 f"or m in {HEAVY!r}), rc, file=sys.stderr)")
        r = subprocess.run([sys.executable, "-c", probe], env=env_for(data_dir),
                           capture_output=True, text=True, timeout=60)
        assert r.stderr.strip() == "[] 0"
        st = json.loads(r.stdout)
        assert st["daemon"]["source"] == "socket" and st["daemon"]["pid"] == daemon.pid
        assert st["videos"]["total"] == 1
        text = cli(data_dir, "status")
        assert f"daemon: running (pid {daemon.pid})" in text.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    # without a daemon, status reads the database (and then needs the store)
    st = json.loads(cli(data_dir, "status", "--json").stdout)
    assert not st["daemon"]["running"] and st["videos"]["total"] == 1


def test_run_reports_a_bad_cookies_file_with_the_other_errors(data_dir: Path,
                                                               tmp_path: Path) -> None:
    gone = tmp_path / "cookies.txt"
    conf = tmp_path / "c.toml"
    conf.write_text(f'[download]\ncookies_file = "{gone}"\nmax_attempts = 0\n')
    r = subprocess.run([sys.executable, "-m", "ytpiped", "--config", str(conf), "run"],
                       env=env_for(data_dir), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: 2 configuration errors:\n")
    assert f"{conf}: key 'download.max_attempts': expected" in r.stderr
    assert f"{conf}: key 'download.cookies_file': {gone} does not exist" in r.stderr
    assert not (data_dir / "ytpiped.db").exists()  # refused before the daemon started


def test_hw_json_shape(data_dir: Path) -> None:
    """`hw --json`: the snapshot, the capacity, and one `gpu_slots` entry per GPU found
    (none here without an NVIDIA GPU), with no daemon running."""
    r = cli(data_dir, "hw", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"hardware", "capacity", "gpu_slots"}
    assert len(out["gpu_slots"]) == len(out["hardware"]["gpus"]) \
        == len(out["capacity"]["gpu_slots"])
    for v in out["gpu_slots"]:
        assert {"device", "ceiling", "ceiling_source", "vram", "per_slot", "adaptive",
                "daemon", "active", "why"} <= set(v)
        assert v["daemon"] is False and v["active"] is None
    assert out["capacity"]["cpu_slots"] >= 1
