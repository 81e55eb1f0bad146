"""The embedded PostgreSQL server of the tests: runs as an unprivileged user when we are
root (PostgreSQL refuses root), from a copy of the binaries when that user cannot reach
the installed ones (a checkout under a private home), and leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from ytpiped.testing import pg_server


def test_a_server_from_copied_binaries_runs_unprivileged_and_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        pg_server.binaries()
    except pg_server.Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    real = pg_server._can_run
    tried: list[Path] = []

    def first_unreachable(bin_dir: Path, account: pg_server._Account) -> bool:
        tried.append(bin_dir)
        return len(tried) > 1 and real(bin_dir, account)

    monkeypatch.setattr(pg_server, "_can_run", first_unreachable)
    server = pg_server.start()
    try:
        assert server.bin_dir != pg_server.binaries() and server.bin_dir.is_relative_to(
            server.root)
        with psycopg.connect(server.database()) as conn:
            user, = conn.execute("SELECT usename FROM pg_stat_activity WHERE pid = "
                                 "pg_backend_pid()").fetchone() or ("",)
            assert user == "postgres"
        owner = (server.root / "data").stat().st_uid
        assert owner == os.geteuid() or (os.geteuid() == 0 and owner != 0)
    finally:
        server.stop()
    assert server.process.poll() is not None and not server.root.exists()
