"""The permission policy of files the daemon creates (daemon.umask)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ytpiped import files


@pytest.fixture
def policy() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    files.apply_umask(0o027)
    yield
    files.apply_umask(before)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_writes_follow_the_policy_not_mkstemps_0600(tmp_path: Path,
                                                           policy: None) -> None:
    out = tmp_path / "transcripts" / "x.json"
    files.atomic_write_json(out, {"a": 1})
    assert mode(out) == 0o640
    assert mode(out.parent) == 0o750


def test_tighten_takes_bits_away_and_never_adds(tmp_path: Path, policy: None) -> None:
    data = tmp_path / "data"
    for d in (data, data / "audio", data / ".private"):
        d.mkdir(parents=True)
    os.chmod(data, 0o755)
    os.chmod(data / "audio", 0o777)
    os.chmod(data / ".private", 0o750)
    db = data / "ytpiped.db"
    db.write_text("")
    os.chmod(db, 0o644)
    narrow = data / "ytpiped.db-wal"
    narrow.write_text("")
    os.chmod(narrow, 0o600)
    assert files.tighten(data) == 4
    assert (mode(data), mode(data / "audio"), mode(data / ".private"), mode(db),
            mode(narrow)) == (0o750, 0o750, 0o700, 0o640, 0o600)
    assert files.tighten(data) == 0
