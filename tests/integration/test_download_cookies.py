"""The cookie file at run time: copies a killed daemon left behind, a file that disappears."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ytpiped
from tests.waiting import until
from ytpiped import config
from ytpiped.daemon import Daemon
from ytpiped.download import cookies
from ytpiped.download.ytdlp import Fetched
from ytpiped.errors import Cooldown
from ytpiped.stages.base import Item
from ytpiped.stages.download import DownloadStage
from ytpiped.store import SqliteDB, db_path
from ytpiped.testing.clock import FakeClock
from ytpiped.testing.context import FakeContext
from ytpiped.testing.media_server import MediaServer
from ytpiped.urls import Target, canonicalise

SECRET = "AKSECRETcookieVALUE123"
ROOT = Path(ytpiped.__file__).resolve().parent.parent
#: a download session that makes its private copy, says where, and waits to be killed
SESSION = ("import sys; from pathlib import Path; from ytpiped.download import cookies; "
           "c = cookies.private_copy(sys.argv[1], Path(sys.argv[2])); "
           "print(c.path, flush=True); sys.stdin.read()")


def write_jar(path: Path) -> Path:
    path.write_text("# Netscape HTTP Cookie File\n"
                    f".youtube.com\tTRUE\t/\tTRUE\t0\tSAPISID\t{SECRET}\n")
    os.chmod(path, 0o600)
    return path


def killed_session_copy(jar: Path, private: Path) -> Path:
    """The copy a download session leaves when it is killed with -9 mid-download."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SESSION, str(jar), str(private)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    copy = Path(proc.stdout.readline().strip())
    proc.kill()
    proc.communicate()
    assert copy.is_file() and SECRET in copy.read_text()  # the crash left it behind
    return copy


def row_of(data: Path, video_id: str) -> tuple[str, int]:
    store = SqliteDB(db_path(data), readonly=True)
    try:
        row = store.get(video_id)
        assert row is not None
        return row.state, row.attempts
    finally:
        store.close()


def test_stale_copy_removed_and_copy_in_use_kept(tmp_path: Path) -> None:
    jar = write_jar(tmp_path / "cookies.txt")
    private = tmp_path / "data" / ".private"
    stale = killed_session_copy(jar, private)
    with cookies.private_copy(jar, private) as live:  # this session's copy, in use
        assert cookies.remove_stale_copies(private) == 1
        assert not stale.exists() and live.path.exists()
    assert not live.path.exists()
    assert cookies.remove_stale_copies(tmp_path / "nowhere") == 0


async def test_daemon_start_removes_cookie_copies_of_a_killed_daemon(tmp_path: Path) -> None:
    data = tmp_path / "data"
    jar = write_jar(tmp_path / "cookies.txt")
    stale = killed_session_copy(jar, data / ".private")
    settings = config.load(flags={"data_dir": str(data), "download.cookies_file": str(jar)})
    d = Daemon(settings, environ={}, stages=[DownloadStage()])
    task = asyncio.create_task(d.serve())
    async with asyncio.timeout(60):
        await until(d.ready.is_set, task=task)
        assert not stale.exists()
        d.stop.set()
        assert await task == 0
    assert list((data / ".private").iterdir()) == []


def test_problem_names_the_key_and_the_path_never_the_values(tmp_path: Path) -> None:
    jar = write_jar(tmp_path / "cookies.txt")
    assert cookies.problem(jar) is None
    gone = tmp_path / "gone.txt"
    msg = cookies.problem(gone)
    assert msg is not None and "download.cookies_file" in msg and str(gone) in msg
    assert "does not exist" in msg
    folder = tmp_path / "folder.txt"
    folder.mkdir()  # unreadable as a file (as root, permission bits do not stop a read)
    msg = cookies.problem(folder)
    assert msg is not None and "cannot read" in msg and str(folder) in msg
    assert SECRET not in (cookies.problem(jar) or "")


async def test_cookie_file_gone_at_run_time_pauses_downloads_without_an_attempt(
        tmp_path: Path) -> None:
    jar = write_jar(tmp_path / "cookies.txt")
    clock = FakeClock()
    ctx = FakeContext(config.load(flags={"data_dir": str(tmp_path / "data"),
                                         "download.cookies_file": str(jar)}),
                      clock=clock, counts={"queued": 3})
    fetched: list[str] = []

    def fetcher(url: str, audio_dir: Path, stem: str, *args: Any) -> Fetched:
        fetched.append(url)
        path = audio_dir / f"{stem}.m4a"
        audio_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"audio")
        return Fetched(path, "t", None, None, 1.0, 5)

    stage = DownloadStage(fetcher=fetcher)
    await stage.gate(ctx)
    jar.unlink()  # the file disappears while the daemon runs
    video = Item(id="cookievid01", url="https://example.org/a", kind="generic",
                 state="downloading", attempts=0)
    with pytest.raises(Cooldown) as err:  # a cooldown: the video keeps its attempts
        await stage.run(video, ctx)
    # due again at the gate's next look, which holds it while the file is missing
    assert err.value.kind == "cookies_missing" and err.value.until == clock.now() + 5
    assert "download.cookies_file" in str(err.value) and str(jar) in str(err.value)
    assert fetched == [] and stage.pacer is not None and stage.pacer.last_end is None

    gate = asyncio.ensure_future(stage.gate(ctx))
    for _ in range(3):  # the gate holds across several re-checks on the fake clock
        await until(lambda: clock.next_deadline() is not None, task=gate)
        clock.advance(60)
    assert not gate.done()
    held = ctx.published[-1]
    assert held["phase"] == "cooldown" and held["cooldown_kind"] == "cookies_missing"
    assert [a for a in held["alerts"] if "download.cookies_file" in a and str(jar) in a]
    assert SECRET not in json.dumps(ctx.published)

    write_jar(jar)  # the file is back: the gate opens, downloads go on
    await clock.drive(gate)
    assert "alerts" not in ctx.published[-1] and ctx.published[-1]["phase"] != "cooldown"
    out = await stage.run(video, ctx)
    assert fetched == ["https://example.org/a"] and out.fields["size_bytes"] == 5


@pytest.mark.slow
async def test_status_shows_an_alert_while_the_cookie_file_is_missing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    jar = write_jar(tmp_path / "cookies.txt")
    settings = config.load(flags={"data_dir": str(data), "download.cookies_file": str(jar),
                                  "daemon.poll_interval_s": 0.2,
                                  "download.delay_buffer_build_s": [0, 0]})
    async with MediaServer() as media:
        d = Daemon(settings, environ={}, stages=[DownloadStage()])
        task = asyncio.create_task(d.serve())
        async with asyncio.timeout(60):
            await until(d.ready.is_set, task=task)
            jar.unlink()
            url = media.media_url("solar.webm")
            target = canonicalise(url)
            assert isinstance(target, Target)
            store = SqliteDB(db_path(data), now=0)
            store.add_videos([target], now=0)
            store.close()
            await until(lambda: bool(d.live.get("download", {}).get("alerts")), task=task)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ytpiped", "--data-dir", str(data), "status",
                stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
            out, _ = await proc.communicate()
            assert row_of(data, target.id) == ("queued", 0)
            assert media.log == []  # not one request went out
            write_jar(jar)  # back: the download goes ahead
            await until(lambda: row_of(data, target.id)[0] == "downloaded", task=task)
            d.stop.set()
            assert await task == 0
    text = out.decode()
    alert = next(line for line in text.splitlines() if line.startswith("ALERT: "))
    assert "download.cookies_file" in alert and str(jar) in alert and SECRET not in text
