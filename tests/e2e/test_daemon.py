from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.helpers import (
    cli,
    counts,
    env_for,
    start_daemon,
    started,
    wait_for,
    write_fake_config,
)
from ytpiped.states import IN_PROGRESS

IDS = [f"e2evideo{i:03d}" for i in range(8)]


def add_ids(data_dir: Path, ids: list[str]) -> None:
    r = cli(data_dir, "add", "-", input="\n".join(ids) + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"added {len(ids)}, duplicate 0, invalid 0")


def in_progress(c: dict[str, int]) -> int:
    return sum(c.get(s.value, 0) for s in IN_PROGRESS)


def test_sigterm_mid_work_returns_rows_and_exits_0(data_dir: Path, tmp_path: Path) -> None:
    write_fake_config(data_dir, delay_s=30.0, concurrency=3, stages=["download"])
    add_ids(data_dir, IDS)
    daemon = start_daemon(data_dir, tmp_path / "daemon.log",
                          {"YTPIPED_DAEMON__SHUTDOWN_GRACE_S": "0.5"})
    try:
        wait_for(lambda: len(started(data_dir)) >= 3, what="three downloads in flight")
        assert counts(data_dir)["downloading"] == 3
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        daemon.kill()
    c = counts(data_dir)
    assert in_progress(c) == 0
    assert c["queued"] == len(IDS)
    status = json.loads(cli(data_dir, "status", "--json").stdout)
    assert status["daemon"]["running"] is False
    assert status["videos"]["by_state"]["queued"] == len(IDS)
    log = (tmp_path / "daemon.log").read_text()
    assert "daemon_stopped" in log and "stage_released" in log


def test_kill_9_then_restart_recovers_and_finishes(data_dir: Path, tmp_path: Path) -> None:
    write_fake_config(data_dir, delay_s=60.0, concurrency=2, stages=["download"])
    add_ids(data_dir, IDS[:4])
    first = start_daemon(data_dir, tmp_path / "d1.log")
    try:
        wait_for(lambda: counts(data_dir).get("downloading") == 2, what="two leases")
        first.kill()
        first.wait(timeout=30)
    finally:
        first.kill()
    assert counts(data_dir)["downloading"] == 2  # orphaned leases
    write_fake_config(data_dir, delay_s=0.0, concurrency=2, stages=["download"])
    second = start_daemon(data_dir, tmp_path / "d2.log")
    try:
        wait_for(lambda: counts(data_dir).get("downloaded") == 4, what="all downloaded")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    finally:
        second.kill()
    log = (tmp_path / "d2.log").read_text()
    assert '"recovered": 2' in log


def status(data_dir: Path) -> dict[str, object]:
    """The "daemon" part of `ytpiped status --json`."""
    return dict(json.loads(cli(data_dir, "status", "--json").stdout)["daemon"])


def test_second_daemon_exits_3(data_dir: Path, tmp_path: Path) -> None:
    write_fake_config(data_dir, stages=["download"])
    first = start_daemon(data_dir, tmp_path / "d1.log")
    try:
        wait_for(lambda: json.loads(cli(data_dir, "status", "--json").stdout)["daemon"]["running"],
                 what="first daemon running")
        second = subprocess.run(first.args, env=env_for(data_dir),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 3
        assert "already owns" in second.stdout + second.stderr
        # the first daemon answers status (on a loaded machine an answer may come later
        # than the client waits, which then reads the database: ask again)
        answers: list[dict[str, object]] = []
        wait_for(lambda: answers.append(status(data_dir)) or answers[-1]["source"] == "socket",
                 what="status from the daemon")
        st = answers[-1]
        assert st == {"running": True, "pid": first.pid, "source": "socket",
                      "started_at": st["started_at"]}
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0


def test_add_while_daemon_runs_is_picked_up(data_dir: Path, tmp_path: Path) -> None:
    write_fake_config(data_dir, stages=["download"])
    daemon = start_daemon(data_dir, tmp_path / "d.log")
    try:
        wait_for(lambda: json.loads(cli(data_dir, "status", "--json").stdout)["daemon"]["running"],
                 what="daemon running")
        add_ids(data_dir, IDS[:3])
        wait_for(lambda: counts(data_dir).get("downloaded") == 3, what="new rows processed")
        add_ids(data_dir, IDS[3:5])
        wait_for(lambda: counts(data_dir).get("downloaded") == 5, what="second batch")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0


def test_second_sigint_forces_stop_without_waiting_grace(data_dir: Path, tmp_path: Path) -> None:
    write_fake_config(data_dir, fail={i: "hang" for i in IDS[:2]}, concurrency=2,
                      stages=["download"])
    add_ids(data_dir, IDS[:2])
    daemon = start_daemon(data_dir, tmp_path / "d.log",
                          {"YTPIPED_DAEMON__SHUTDOWN_GRACE_S": "600"})
    try:
        wait_for(lambda: len(started(data_dir)) == 2, what="two hung jobs")
        daemon.send_signal(signal.SIGINT)
        wait_for(lambda: "daemon_stopping" in (tmp_path / "d.log").read_text(),
                 what="drain started")
        assert daemon.poll() is None  # still draining: it honours the 600 s grace
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0  # forced: did not wait 600 s
    finally:
        daemon.kill()
    c = counts(data_dir)
    assert c["queued"] == 2 and in_progress(c) == 0


def test_missing_model_exits_2_naming_the_key(data_dir: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ytpiped", "run"], capture_output=True, text=True,
                       timeout=120, env={**env_for(data_dir),
                                         "YTPIPED_DAEMON__STAGE_FACTORY": "",
                                         "YTPIPED_TRANSCRIBE__MODEL_CPU": "no-such-model",
                                         "YTPIPED_TRANSCRIBE__ALLOW_DOWNLOAD": "false"})
    assert r.returncode == 2
    assert "key 'transcribe.model_cpu'" in r.stderr and "local" in r.stderr
    assert "Traceback" not in r.stderr


def test_metrics_port_in_use_exits_2_naming_the_key(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "ytpiped", "run"], capture_output=True,
                           text=True, timeout=120,
                           env={**env_for(data_dir), "YTPIPED_DAEMON__METRICS_PORT": str(port)})
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert f"key 'daemon.metrics_port': 127.0.0.1:{port} is already in use" in r.stderr
    assert not (data_dir / "ytpiped.sock").exists()  # nothing left behind


def test_db_check_and_backup_while_the_daemon_runs(data_dir: Path, tmp_path: Path) -> None:
    write_fake_config(data_dir, fail={i: "hang" for i in IDS[:3]}, concurrency=4,
                      stages=["download"])
    add_ids(data_dir, IDS)
    daemon = start_daemon(data_dir, tmp_path / "d.log",
                          {"YTPIPED_DAEMON__SHUTDOWN_GRACE_S": "0"})
    backup = tmp_path / "backups" / "ytpiped-backup.db"
    backup.parent.mkdir()
    try:
        wait_for(lambda: counts(data_dir).get("downloaded") == len(IDS) - 3,
                 what="all but the three hung jobs downloaded")
        check = cli(data_dir, "db", "check", "--json")
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["ok"] is True
        r = cli(data_dir, "db", "backup", str(backup))
        assert r.returncode == 0, r.stderr
        assert str(backup) in r.stdout
        live = {k: n for k, n in counts(data_dir).items() if n}
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    # the backup is a ytpiped database with the same rows: restore it as README says
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(backup, restored / "ytpiped.db")
    assert {k: n for k, n in counts(restored).items() if n} == live == {
        "downloading": 3, "downloaded": len(IDS) - 3}
    write_fake_config(restored, stages=["download"])
    again = start_daemon(restored, tmp_path / "d2.log")
    try:
        # the rows the backup caught in flight go back and are downloaded
        wait_for(lambda: counts(restored)["downloaded"] == len(IDS), what="restored run")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0
