"""`ytpiped pause STAGE` / `resume STAGE` on the real daemon: the held stage starts
nothing new (the others go on), `status` shows the hold, and it survives a restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.e2e.helpers import cli, counts, start_daemon, wait_for, write_fake_config


def test_pause_holds_one_stage_across_a_restart_and_resume_releases_it(
        data_dir: Path, tmp_path: Path) -> None:
    ids = [f"pausevid{i:03d}" for i in range(6)]
    write_fake_config(data_dir, delay_s=0.02, concurrency=2)
    assert cli(data_dir, "add", "-", input="\n".join(ids)).returncode == 0
    held = cli(data_dir, "pause", "analyze")
    assert held.returncode == 0 and "analyze: held" in held.stdout
    daemon = start_daemon(data_dir, tmp_path / "d1.log")
    try:
        # downloads go on; nothing passes the held analysis stage
        wait_for(lambda: counts(data_dir).get("downloaded") == len(ids), what="downloads")
        assert counts(data_dir).get("analyzing", 0) == 0
        st = json.loads(cli(data_dir, "status", "--json").stdout)
        assert st["stages"]["analyze"]["paused"] is True
        assert st["stages"]["download"]["paused"] is False
        assert st["eta_seconds"] is None
        assert "PAUSED (ytpiped resume analyze)" in cli(data_dir, "status").stdout
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        daemon = start_daemon(data_dir, tmp_path / "d2.log")  # the hold outlives a restart
        wait_for(lambda: json.loads(cli(data_dir, "status", "--json").stdout)["daemon"]
                 ["running"], what="the restarted daemon")
        assert counts(data_dir).get("downloaded") == len(ids)
        released = cli(data_dir, "resume", "analyze")
        assert released.returncode == 0 and "resumed" in released.stdout
        wait_for(lambda: counts(data_dir).get("done") == len(ids), what="all done")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    st = json.loads(cli(data_dir, "status", "--json").stdout)
    assert st["stages"]["analyze"]["paused"] is False
