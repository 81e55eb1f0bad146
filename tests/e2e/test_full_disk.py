"""A real full disk: the data directory on a small tmpfs, filled to the last byte while
the real daemon runs and before it starts. The daemon waits (no exit, no restart loop),
`status` shows an ALERT, and every video finishes once space returns, no attempt spent.
Needs permission to mount a tmpfs (root, as in CI); skipped elsewhere."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import cli, counts, start_daemon, wait_for, write_fake_config
from ytpiped.store import SqliteDB, db_path

N = 30


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk; returns the filler to delete."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = 65536
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                size //= 2
    finally:
        os.close(fd)
    return filler


def alerts(data: Path) -> list[str]:
    r = cli(data, "status", "--json")
    if r.returncode != 0:
        return []
    return list(json.loads(r.stdout).get("alerts", []))


@pytest.mark.slow
def test_full_disk_before_and_during_the_run(small_disk: Path, tmp_path: Path) -> None:
    data = small_disk / "data"
    data.mkdir()
    (data / "fake_stages.json").write_text(json.dumps({"delay_s": 0.02, "concurrency": 2}))
    write_fake_config(data, delay_s=0.02, concurrency=2)
    (data / "fake_stages.started").rmdir()
    ids = [f"diskvideo{i:02d}" for i in range(N)]
    assert cli(data, "add", "-", input="\n".join(ids)).returncode == 0
    log = tmp_path / "daemon.log"
    filler = fill(small_disk)
    daemon = start_daemon(data, log)
    try:
        # start-up on a full disk: waits (does not exit), status answers with an ALERT
        wait_for(lambda: any("is full" in a for a in alerts(data)), timeout=60,
                 what="an ALERT about the full disk")
        assert daemon.poll() is None
        filler.unlink()
        wait_for(lambda: counts(data).get("done", 0) >= N // 3, timeout=120,
                 what="progress once space is back")
        filler = fill(small_disk)  # and full again in the middle of the run
        wait_for(lambda: any("is full" in a for a in alerts(data)) or
                 counts(data).get("done") == N, timeout=60, what="the second ALERT")
        assert daemon.poll() is None
        filler.unlink()
        wait_for(lambda: counts(data).get("done") == N, timeout=120, what="all done")
        wait_for(lambda: not alerts(data), timeout=60, what="the ALERT to clear")
    finally:
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=60)
    text = log.read_text(errors="replace")
    assert rc == 0, text[-3000:]
    assert "store_full" in text and "Traceback" not in text
    s = SqliteDB(db_path(data), readonly=True)
    assert s.counts()["done"] == N
    assert s.conn.execute("SELECT max(attempts) FROM videos").fetchone()[0] == 0
    s.close()
