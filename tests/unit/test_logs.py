from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

import pytest

from ytpiped import logs


@pytest.fixture(autouse=True)
def _reset_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._secret_values.clear()


def test_json_lines_with_context_and_stdlib_bridge() -> None:
    out = io.StringIO()
    logs.setup(json=True, stream=out)
    logs.get("ytpiped.test", stage="download").info("download_started", video_id="abc")
    logging.getLogger("yt_dlp").warning("from a library")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "download_started" and first["stage"] == "download"
    assert first["video_id"] == "abc" and first["level"] == "info" and "timestamp" in first
    assert second["event"] == "from a library" and second["logger"] == "yt_dlp"
    assert second["level"] == "warning"


def test_console_renderer_when_not_json() -> None:
    out = io.StringIO()
    logs.setup(json=False, stream=out)
    logs.get().info("daemon_started", pid=1)
    text = out.getvalue()
    assert "daemon_started" in text and not text.lstrip().startswith("{")


def test_secrets_never_rendered() -> None:
    out = io.StringIO()
    logs.setup(json=True, stream=out)
    logs.register_secret("SAPISID=s3cr3tcookievalue")
    logs.register_secret("s3cr3tcookievalue")
    log = logs.get()
    log.info("download_failed", error="HTTP 403 with cookie s3cr3tcookievalue sent",
             cookie="anything", auth_token="t0ken")
    logging.getLogger("yt_dlp").error("Cookie header: SAPISID=s3cr3tcookievalue")
    text = out.getvalue()
    assert "s3cr3tcookievalue" not in text and "t0ken" not in text
    assert text.count("[redacted]") >= 3
    assert logs.scrub("x s3cr3tcookievalue y") == "x [redacted] y"
    log.info("mine_finished", prompt_tokens=1234, tokens_per_s=56.5)  # counts, not secrets
    assert '"prompt_tokens": 1234' in out.getvalue() and '"tokens_per_s": 56.5' in out.getvalue()


def test_short_values_are_not_registered() -> None:
    logs.register_secret("abc")
    assert logs.scrub("abc") == "abc"


def _log_every_level() -> None:
    log = logs.get("ytpiped.test")
    log.debug("checked_something")
    log.info("download_started")
    log.warning("stage_retry")
    log.error("stage_failed")
    log.critical("side_task_died")
    logging.getLogger("yt_dlp").error("from a library")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("outcome_not_saved")


#: (event, syslog priority) in the order _log_every_level logs them
EXPECTED = [("checked_something", 7), ("download_started", 6), ("stage_retry", 4),
            ("stage_failed", 3), ("side_task_died", 2), ("from a library", 3),
            ("outcome_not_saved", 3)]


@pytest.mark.parametrize("json_lines", [True, False])
def test_journal_stream_lines_start_with_their_syslog_priority(
        tmp_path: Path, json_lines: bool) -> None:
    path = tmp_path / "journal-stream"
    with path.open("w") as out:
        st = os.fstat(out.fileno())
        logs.setup(json=json_lines, level="debug", stream=out,
                   journal_stream=f"{st.st_dev}:{st.st_ino}")
        _log_every_level()
    lines = path.read_text().splitlines()
    assert all(re.match(r"<[2-7]>", line) for line in lines), lines  # tracebacks too
    firsts = [(line, int(line[1])) for line in lines
              if any(event in line for event, _ in EXPECTED)]
    assert [prio for _, prio in firsts] == [prio for _, prio in EXPECTED]
    for (line, _), (event, _) in zip(firsts, EXPECTED, strict=True):
        assert event in line
    if json_lines:  # the JSON after the prefix is intact
        assert json.loads(lines[0][3:])["event"] == "checked_something"


def test_no_priority_prefix_off_the_journal(tmp_path: Path) -> None:
    path, other = tmp_path / "log", tmp_path / "journal-elsewhere"
    other.touch()
    st = os.stat(other)
    for journal_stream in (None, "", f"{st.st_dev}:{st.st_ino}", "garbage", "1:2:3"):
        with path.open("w") as out:  # stderr sent to a file while JOURNAL_STREAM is inherited
            logs.setup(json=True, level="debug", stream=out, journal_stream=journal_stream)
            _log_every_level()
        lines = path.read_text().splitlines()
        assert lines and not any(line.startswith("<") for line in lines), journal_stream
    out_io = io.StringIO()  # a stream without a file descriptor
    logs.setup(json=True, stream=out_io, journal_stream=f"{st.st_dev}:{st.st_ino}")
    logs.get().error("stage_failed")
    assert out_io.getvalue().startswith("{")


def test_priority_of_each_level() -> None:
    assert [logs.priority(n) for n in (5, 10, 20, 25, 30, 40, 50, 60)] == \
        [7, 7, 6, 6, 4, 3, 2, 2]
