"""The real daemon mines the demo's transcripts through a real OpenAI-compatible server:
llama-cpp-python's `llama_cpp.server` with SmolLM2-135M, the JSON schema enforced by the
server's grammar (`response_format`), real tokens and real latency. Claim quality from a
135M model is not the point; the protocol, the constrained decoding and the bookkeeping
are. Marked `llm`: skipped where llama-cpp-python is not installed, except in CI."""

from __future__ import annotations

import json
import signal
import statistics
from pathlib import Path

import pytest

from tests.e2e.helpers import cli, counts, start_daemon, wait_for
from tests.mining_ctx import write_transcript
from ytpiped.mining.schema import WindowResult
from ytpiped.store import NewVideo, SqliteDB, db_path
from ytpiped.testing.llama_server import LlamaServer
from ytpiped.testing.media_server import MEDIA_DIR

#: on the 2-core development machine shared with other work, one run took 13 to 25 minutes
#: (SmolLM2 writes several hundred tokens a window at 2-17 tokens/s, depending on the load)
pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(2100)]

#: the demo's spoken media: what each file says (ytpiped/testing/media/manifest.json)
DEMO = ("solar.webm", "coffee.m4a", "long.opus")


def demo_texts() -> dict[str, list[str]]:
    manifest = json.loads((MEDIA_DIR / "manifest.json").read_text())
    return {name: [s.strip() + "." for s in manifest[name]["text"].split(".") if s.strip()]
            for name in DEMO}


def seed(data: Path) -> dict[str, list[str]]:
    """The demo transcripts, one sentence a segment, as videos waiting to be mined."""
    texts = {f"real{i:07d}": t for i, t in enumerate(demo_texts().values())}
    data.mkdir(parents=True, exist_ok=True)
    s = SqliteDB(db_path(data), now=0)
    try:
        s.add_videos([NewVideo(v, f"https://example.org/{v}", "video") for v in texts], now=0)
        for v, sentences in texts.items():
            write_transcript(data, v, sentences, seg_s=4.0)
            s.conn.execute("UPDATE videos SET state = 'transcribed', title = ?, channel = ? "
                           "WHERE id = ?", (f"Demo talk {v}", "Demo channel", v))
    finally:
        s.close()
    return texts


def env(server: LlamaServer) -> dict[str, str]:
    return {"YTPIPED_DAEMON__STAGE_FACTORY": "ytpiped.testing.stages:mining_pipeline",
            "YTPIPED_DAEMON__LEASE_S": "600",  # a 2-core machine: requests take seconds
            "YTPIPED_MINE__HOSTS": json.dumps([server.url]), "YTPIPED_MINE__API": "openai",
            "YTPIPED_MINE__MODEL": server.model, "YTPIPED_MINE__NUM_CTX": str(server.n_ctx),
            "YTPIPED_MINE__ANSWER_TOKENS": "1024", "YTPIPED_MINE__WINDOW_TOKENS": "120",
            "YTPIPED_MINE__OVERLAP_TOKENS": "20", "YTPIPED_MINE__REQUEST_TIMEOUT_S": "600"}


def test_demo_transcripts_mined_through_a_real_llm_server(tmp_path: Path,
                                                          llama_server: LlamaServer) -> None:
    data = tmp_path / "data"
    texts = seed(data)
    extra = env(llama_server)
    proc = start_daemon(data, tmp_path / "daemon.log", extra)
    try:
        wait_for(lambda: counts(data).get("done", 0) + counts(data).get("failed", 0)
                 == len(texts), timeout=1920, what="every video mined and evaluated")
        live = json.loads(cli(data, "status", "--json", extra_env=extra).stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    log = (tmp_path / "daemon.log").read_text()
    assert rc == 0, log[-3000:]
    assert counts(data).get("done") == len(texts), log[-3000:]
    s = SqliteDB(db_path(data), readonly=True)
    try:
        parts = {v: s.load_parts(v, "window") for v in texts}
    finally:
        s.close()
    per_video = []
    for v, sentences in texts.items():
        doc = json.loads((data / "mining" / f"{v}.json").read_text())
        assert doc["provenance"]["api"] == "openai" and doc["evaluation"]["status"] == "ok"
        # every window persisted and answered with JSON the schema accepts (the grammar)
        windows = parts[v]
        assert windows and len(windows) == doc["provenance"]["windows"]
        assert all(p["status"] == "ok" for p in windows.values())
        for p in windows.values():
            WindowResult.model_validate({k: p[k] for k in ("claims", "people", "concepts")})
        # each evidence quote is located in the transcript, or said not to be
        for c in doc["claims"]:
            assert c["quote_found"] in ("exact", "approximate", "no")
            assert (c["start"] is None) == (c["quote_found"] == "no")
            if c["quote_found"] == "exact":
                assert any(c["evidence"].strip(" .").lower() in t.lower() for t in sentences)
        # the tokens the server counted (usage), per window and for the video
        tokens = doc["tokens"]
        assert all(tokens["windows"][str(i)]["prompt"] > 0 for i in windows)
        assert tokens["prompt"] >= sum(t["prompt"] for t in tokens["windows"].values())
        assert tokens["evaluate"]["prompt"] > 0 and tokens["completion"] > 0
        per_video.append(tokens["mine"]["prompt"] + tokens["mine"]["completion"])
    # status once the backlog is mined: the server's throughput, tokens per video, no
    # backlog (windows/min counts the pool's current interval, which may have just begun)
    mine = live["stages"]["mine"]
    assert mine["tokens_per_s"] > 0 and mine["rate_windows_per_min"] >= 0
    assert mine["tokens_per_video"] == round(statistics.median(per_video))
    assert mine["backlog_videos"] == 0 and mine["eta_seconds"] == 0
    # the pool sized itself for a server that decodes one request at a time
    assert 1 <= mine["workers"] <= 4
    assert "mine_pool_sized" in log
