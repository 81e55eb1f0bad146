"""`ytpiped add --follow`, `follows`, `unfollow` as subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import cli, counts

CHANNEL = "https://www.youtube.com/@fakechan"


def test_follow_list_and_unfollow(data_dir: Path) -> None:
    r = cli(data_dir, "add", "--follow", CHANNEL, "--filter", "min_duration_s=600",
            "--filter", "title_exclude=trailer")
    assert r.returncode == 0 and "followed 1, updated 0" in r.stdout, r.stderr
    assert counts(data_dir).get("queued", 0) == 0  # following queues nothing itself
    r = cli(data_dir, "follows", "--json")
    (got,) = json.loads(r.stdout)["follows"]
    assert (got["url"], got["kind"], got["checks"], got["last_check_at"]) == (
        f"{CHANNEL}/videos", "channel", 0, None)
    assert got["filters"] == {"min_duration_s": 600.0, "title_exclude": "trailer"}
    r = cli(data_dir, "add", "--follow", CHANNEL)
    assert "followed 0, updated 1" in r.stdout
    assert "last check never" in cli(data_dir, "follows").stdout
    r = cli(data_dir, "unfollow", CHANNEL)
    assert r.returncode == 0 and "unfollowed" in r.stdout
    assert json.loads(cli(data_dir, "follows", "--json").stdout)["follows"] == []
    r = cli(data_dir, "unfollow", CHANNEL)
    assert r.returncode == 2 and "is not followed" in r.stderr


def test_follow_refuses_videos_and_bad_filters_writing_nothing(data_dir: Path) -> None:
    r = cli(data_dir, "add", "--follow", CHANNEL, "https://youtu.be/aaaaaaaaaaa")
    assert r.returncode == 2 and "is a single video" in r.stderr
    r = cli(data_dir, "add", "--follow", CHANNEL, "--filter", "after=yesterday")
    assert r.returncode == 2 and "filter after: expected a date" in r.stderr
    r = cli(data_dir, "add", CHANNEL, "--filter", "skip_live=true")
    assert r.returncode == 2 and "add --follow" in r.stderr
    assert json.loads(cli(data_dir, "follows", "--json").stdout)["follows"] == []
