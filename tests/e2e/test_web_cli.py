"""`ytpiped web`: the page without a daemon, read-only, as a subprocess."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import cli, env_for, web_page


@pytest.fixture
def served(data_dir: Path) -> Iterator[str]:
    r = cli(data_dir, "add", "-", input="webcli0001a\nwebcli0002b\n")
    assert r.returncode == 0, r.stderr
    with web_page([], env_for(data_dir)) as (line, url):
        assert "read-only" in line, line
        yield url


def test_web_serves_the_database_read_only(served: str, data_dir: Path) -> None:
    with urllib.request.urlopen(served) as resp:
        html = resp.read().decode()
    assert 'data-count="queued">2<' in html and "(read-only)" in html
    assert 'name="csrf"' not in html
    status = json.loads(cli(data_dir, "status", "--json").stdout)
    with urllib.request.urlopen(served + "api/status") as resp:
        assert json.loads(resp.read())["videos"] == status["videos"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(served + "actions/retry",
                                                      data=b"csrf=x", method="POST"))
    assert err.value.code == 403
    err.value.close()


def test_web_on_a_port_in_use_exits_2_naming_the_key(data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = cli(data_dir, "web", "--port", str(busy.getsockname()[1]))
    assert r.returncode == 2
    assert "web.port" in r.stderr and "--port" in r.stderr


def test_web_on_a_data_dir_without_a_database_shows_an_empty_run(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-yet"
    with web_page([], env_for(empty)) as (_, url):
        for path in ("", "failures", "videos"):
            with urllib.request.urlopen(url + path) as resp:
                assert resp.status == 200
        with urllib.request.urlopen(url + "api/status") as resp:
            assert json.loads(resp.read())["videos"]["total"] == 0
        assert not (empty / "ytpiped.db").exists()  # read-only: nothing created
