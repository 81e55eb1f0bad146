"""The web page in a real browser: headless Chromium (the system package) loads the
overview and a video page of the demo's data served by `ytpiped web`; assertions on the
DOM after the page's script ran, and a screenshot of each page under test-output/web/.

.ci/run installs Chromium when it is missing; where it cannot be had these tests are
skipped, saying so."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import web_page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("YTPIPED_TEST_OUTPUT", ROOT / "test-output")) / "web"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium on this machine: `apt-get install -y chromium` "
                "(.ci/run installs it); the web page's browser tests did not run")


def chromium(*args: str) -> str:
    r = subprocess.run([browser(), "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                        "--virtual-time-budget=3000", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The demo's finished data (`python -m ytpiped.demo --small`), served read-only by
    `ytpiped web --port 0`: (config path, the page's address)."""
    browser()
    work = tmp_path_factory.mktemp("web") / "demo"
    r = subprocess.run([sys.executable, "-m", "ytpiped.demo", "--workdir", str(work),
                        "--small", "--timeout", "240"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(r"web page while it runs: http://127\.0\.0\.1:\d+/", r.stdout)
    config = work / "ytpiped.toml"
    with web_page(["--config", str(config)]) as (_, url):
        yield config, url


def status_json(config: Path) -> dict[str, object]:
    r = subprocess.run([sys.executable, "-m", "ytpiped", "--config", str(config), "status",
                        "--json"], capture_output=True, text=True, timeout=60, check=True)
    out: dict[str, object] = json.loads(r.stdout)
    return out


@pytest.mark.slow
def test_overview_in_a_browser_matches_status_and_plots_the_run(
        demo: tuple[Path, str]) -> None:
    config, url = demo
    dom = chromium("--dump-dom", url)
    st = status_json(config)
    by_state = st["videos"]["by_state"]  # type: ignore[index]
    shown = dict(re.findall(r'data-count="(\w+)">(\d+)<', dom))
    assert {k: int(v) for k, v in shown.items()} == by_state
    assert by_state["done"] == 3 and by_state["failed"] == 2
    # the demo kept a point every 2 s: the backlog plot has a line with several points
    backlog = re.search(r'id="plot-backlog">.*?</figure>', dom, re.S)
    assert backlog, "no backlog plot"
    counts = [int(n) for n in re.findall(r'data-points="(\d+)"', backlog.group(0))]
    assert counts and max(counts) >= 3
    assert re.search(r'<polyline[^>]+points="[\d.]+,[\d.]+ [\d.]+,[\d.]+', backlog.group(0))
    # the script ran: times are in the reader's locale, not the server's ISO text
    assert re.search(r"<time datetime=\"[^\"]+Z\">(?![\d-]+ [\d:]+Z<)", dom)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "overview.png"
    chromium("--window-size=1100,1300", f"--screenshot={shot}", url)
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_video_page_in_a_browser_links_transcript_times(demo: tuple[Path, str]) -> None:
    _, url = demo
    listing = chromium("--dump-dom", url + "videos?state=done")
    ids = re.findall(r'href="/video/([^"]+)"', listing)
    assert len(ids) == 3
    for vid in ids:
        dom = chromium("--dump-dom", f"{url}video/{vid}")
        if 'id="claims"' in dom:
            break
    links = re.findall(r'<a class="t" href="([^"]+)"', dom)
    assert links and all("t=" in link for link in links)
    assert any(re.search(r"[#&]t=[1-9]\d*", link) for link in links)  # a later segment
    assert re.search(r'<ol id="claims"><li>', dom)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "video.png"
    chromium("--window-size=1100,1300", f"--screenshot={shot}", f"{url}video/{vid}")
    assert shot.stat().st_size > 10_000
