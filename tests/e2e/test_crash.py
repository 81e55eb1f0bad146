"""kill -9 the daemon at seeded random moments, restart each time: every video ends
`done` exactly once, nothing is lost or duplicated."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

from tests.e2e.helpers import cli, counts, start_daemon, wait_for, write_fake_config
from ytpiped.states import IN_PROGRESS
from ytpiped.store import SqliteDB, db_path

N = 12


@pytest.mark.slow
def test_kill_9_at_random_points_loses_nothing(data_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(7)
    ids = [f"crashvid{i:03d}" for i in range(N)]
    write_fake_config(data_dir, delay_s=0.05, concurrency=2)
    r = cli(data_dir, "add", "-", input="\n".join(ids))
    assert r.returncode == 0
    kills = 0
    log = tmp_path / "daemon.log"
    seen_stages: set[str] = set()
    while counts(data_dir).get("done", 0) < N and kills < 10:
        daemon = start_daemon(data_dir, log)
        progress_before = sum(i * n for i, n in enumerate(counts(data_dir).values()))
        target = progress_before + rng.randint(1, 6)
        try:
            wait_for(lambda t=target: sum(i * n for i, n in enumerate(counts(data_dir).values()))
                     >= t or counts(data_dir).get("done") == N, what="some progress")
            c = counts(data_dir)
            seen_stages |= {s.value for s in IN_PROGRESS if c.get(s.value)}
        finally:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=30)
        kills += 1
    final = start_daemon(data_dir, log)
    try:
        wait_for(lambda: counts(data_dir).get("done") == N, timeout=120, what="all done")
        wait_for(lambda: json.loads(cli(data_dir, "status", "--json").stdout)["daemon"]
                 ["running"], what="daemon serving")
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(timeout=60) == 0
    assert kills >= 5
    assert len(seen_stages) >= 3  # killed while work was in flight in several stages
    s = SqliteDB(db_path(data_dir), readonly=True)
    c = s.counts()
    assert c["done"] == N and sum(c.values()) == N
    # each stage completed each video exactly once (a crash never duplicates a completion)
    for stage in ("download", "analyze", "transcribe", "mine", "evaluate"):
        n = s.conn.execute("SELECT count(*), count(DISTINCT video_id) FROM events WHERE "
                           "stage = ? AND event = 'completed'", (stage,)).fetchone()
        assert n == (N, N), stage
    s.close()
    st = json.loads(cli(data_dir, "status", "--json").stdout)
    assert st["videos"]["by_state"]["done"] == N and st["failures"]["by_kind"] == {}
