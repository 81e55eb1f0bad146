"""`ytpiped retry` on videos a filter skipped, as a subprocess: a named one, or all with
--skipped, is queued anyway and keeps its filters bypassed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import cli, counts
from ytpiped.store import NewVideo, SqliteDB, db_path

IDS = ["skippedvid1", "skippedvid2", "skippedvid3", "failedvid01"]


def _seed(data_dir: Path) -> None:
    db = SqliteDB(db_path(data_dir), now=0)
    db.add_videos([NewVideo(i, f"https://www.youtube.com/watch?v={i}", "video") for i in IDS],
                  now=1)
    for row in db.claim("download", "w", now=2, lease_s=60, limit=len(IDS)):
        if row.id.startswith("failed"):
            db.fail(row.id, "w", "downloading", now=3, kind="network", error="x")
        else:
            db.complete(row.id, "w", "downloading", "skipped", now=3,
                        info={"skipped": "shorter than 60 s"})
    db.close()


def _info(data_dir: Path, vid: str) -> dict[str, object]:
    db = SqliteDB(db_path(data_dir))
    try:
        row = db.get(vid)
        assert row is not None
        return {"state": row.state, **row.info}
    finally:
        db.close()


def test_retry_queues_a_named_skipped_video_and_all_with_skipped(data_dir: Path) -> None:
    cli(data_dir, "status")  # creates the database
    _seed(data_dir)
    r = cli(data_dir, "retry", "skippedvid1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("re-queued 0 failed videos; queued 1 skipped video anyway "
                                "(filters bypassed)")
    assert _info(data_dir, "skippedvid1") == {"state": "queued", "unfiltered": True}
    assert counts(data_dir)["skipped"] == 2
    r = cli(data_dir, "retry", "--skipped", "--json")
    assert json.loads(r.stdout) == {"requeued": 0, "skipped": 2, "stage": None, "kind": None,
                                    "video_ids": []}
    assert counts(data_dir)["skipped"] == 0 and counts(data_dir)["failed"] == 1
    r = cli(data_dir, "retry", "--skipped", "--kind", "network")
    assert r.returncode == 2 and "--skipped" in r.stderr
