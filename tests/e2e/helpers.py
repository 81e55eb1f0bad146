"""Run the real CLI as subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ytpiped.store import SqliteDB, db_path
from ytpiped.testing import fake_youtube
from ytpiped.testing.media_server import MediaServer


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    env.update({"YTPIPED_DATA_DIR": str(data_dir),
                "YTPIPED_DAEMON__STAGE_FACTORY": "ytpiped.testing.stages:fake_pipeline",
                "YTPIPED_DAEMON__POLL_INTERVAL_S": "0.05",
                "YTPIPED_DAEMON__REAP_INTERVAL_S": "0.2",
                "YTPIPED_DAEMON__RETRY_BASE_S": "0.01",
                "YTPIPED_DAEMON__LEASE_S": "2",
                # the media server's URLs are another host's: no pause between them
                "YTPIPED_DOWNLOAD__OTHER_HOSTS_DELAY_S": "[0, 0]",
                "YTPIPED_WEB__PORT": "0"})  # the web page on any free port
    return env


def youtube_env(media: MediaServer) -> dict[str, str]:
    """What makes a subprocess's yt-dlp fetch YouTube URLs from the media server's fake
    YouTube (its extractor plugin on the path, the server named): YouTube's pacing,
    cooldowns and breaker then apply to them as to the real site."""
    path = [str(fake_youtube.PLUGIN_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {fake_youtube.ENV: media.url, "PYTHONPATH": os.pathsep.join(path)}


def youtube_urls(media: MediaServer, clips: list[str], prefix: str = "fakevid") -> list[str]:
    """One fake YouTube video per clip (a media file name, with a behaviour query), as the
    watch URLs a user adds."""
    urls = []
    for i, clip in enumerate(clips):
        vid = f"{prefix[:7]:0<7}{i:04d}"  # 11 characters, like YouTube's ids
        media.youtube.video(vid, media=clip)
        urls.append(f"https://www.youtube.com/watch?v={vid}")
    return urls


def cli(data_dir: Path, *args: str, input: str | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = env_for(data_dir)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "ytpiped", *args], env=env, input=input,
                          capture_output=True, text=True, timeout=120)


def start_daemon(data_dir: Path, log: Path, extra_env: dict[str, str] | None = None
                 ) -> subprocess.Popen[bytes]:
    env = env_for(data_dir)
    env.update(extra_env or {})
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "ytpiped", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll a condition on external processes (files, database) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def counts(data_dir: Path) -> dict[str, int]:
    path = db_path(data_dir)
    if not path.exists():
        return {}
    s = SqliteDB(path, readonly=True)
    try:
        return s.counts()
    finally:
        s.close()


def write_fake_config(data_dir: Path, **cfg: Any) -> None:
    (data_dir / "fake_stages.json").write_text(json.dumps(cfg))
    (data_dir / "fake_stages.started").mkdir(exist_ok=True)


def started(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "fake_stages.started").iterdir())


@contextlib.contextmanager
def web_page(args: list[str], env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """`ytpiped ARGS web --port 0` as a subprocess -> (the line it prints once it listens,
    the page's address); SIGTERM at the end, which it must answer with exit code 0."""
    proc = subprocess.Popen([sys.executable, "-m", "ytpiped", *args, "web", "--port", "0"],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert m, line
        yield line, m.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        assert code == 0
