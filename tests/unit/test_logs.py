from __future__ import annotations

import io
import json
import logging

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


def test_short_values_are_not_registered() -> None:
    logs.register_secret("abc")
    assert logs.scrub("abc") == "abc"
