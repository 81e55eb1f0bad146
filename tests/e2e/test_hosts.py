"""Three `ytpiped run` daemons as three hosts (own host_id, own data dir) on one PostgreSQL
store, downloading the demo media with real yt-dlp: kill -9 one of them while it
transcribes, and the other two finish everything. Every video ends done exactly once, no
stage completes a video twice (but for the videos whose audio and outputs were on the
dead host: they are downloaded again elsewhere), and the dead host's leases come back."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest

from tests.e2e.helpers import wait_for, write_fake_config, youtube_env, youtube_urls
from ytpiped.demo import write_config
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer

MEDIA = ["coffee.m4a", "ocean.mp3", "memory.wav", "solar.webm", "silence.webm", "long.opus"]
HOSTS = ("host-a", "host-b", "host-c")


def host_env(data: Path, url: str, host: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    env.update({"YTPIPED_DATA_DIR": str(data), "YTPIPED_STORE__URL": url,
                "YTPIPED_DAEMON__HOST_ID": host,
                "YTPIPED_DAEMON__STAGE_FACTORY": "ytpiped.testing.stages:download_pipeline",
                "YTPIPED_DAEMON__POLL_INTERVAL_S": "0.5",  # NOTIFY wakes the workers
                "YTPIPED_DAEMON__REAP_INTERVAL_S": "0.3",
                "YTPIPED_DAEMON__LEASE_S": "2",
                "YTPIPED_DAEMON__RETRY_BASE_S": "0.05",
                "YTPIPED_STORE__HOST_SILENT_S": "3",
                "YTPIPED_DOWNLOAD__DELAY_BUFFER_BUILD_S": "[0, 0]",
                "YTPIPED_DOWNLOAD__DELAY_STEADY_S": "[0, 0]",
                "YTPIPED_DOWNLOAD__DELAY_CATCH_UP_S": "[0, 0]",
                "YTPIPED_DOWNLOAD__OTHER_HOSTS_DELAY_S": "[0, 0]"})
    return env


def run_until(envs: Mapping[str, dict[str, str]], logs: Mapping[str, IO[bytes]],
              done: Callable[[], bool], timeout: float, what: str) -> list[int]:
    """Run `ytpiped run` for every host until `done()`, stop them with SIGTERM -> their
    exit codes."""
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for host, env in envs.items():
            daemons[host] = subprocess.Popen([sys.executable, "-m", "ytpiped", "run"], env=env,
                                             stdout=logs[host], stderr=subprocess.STDOUT)
        wait_for(done, timeout=timeout, what=what)
    finally:
        for d in daemons.values():
            d.send_signal(signal.SIGTERM)
        codes = [d.wait(timeout=60) for d in daemons.values()]
        for log in logs.values():
            log.close()
    return codes


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


@pytest.mark.slow
def test_three_hosts_one_killed_mid_transcription_the_others_finish(
        servers: tuple[MediaServer, FakeOllama], pg_url: str, tmp_path: Path) -> None:
    media, _ = servers
    urls = [media.media_url(name, copy=n) for n in range(2) for name in MEDIA]
    envs, logs = {}, {}
    for host in HOSTS:
        data = tmp_path / host
        data.mkdir()
        write_fake_config(data, delay_s=0.4)
        envs[host] = host_env(data, pg_url, host)
        logs[host] = (tmp_path / f"{host}.log").open("ab")
    added = subprocess.run([sys.executable, "-m", "ytpiped", "add", *urls], env=envs["host-a"],
                           capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    daemons = {h: subprocess.Popen([sys.executable, "-m", "ytpiped", "run"], env=envs[h],
                                   stdout=logs[h], stderr=subprocess.STDOUT) for h in HOSTS}
    victim = "host-c"
    try:
        # host-c is transcribing a video (its run started and holds the lease)
        wait_for(lambda: query(pg_url, "SELECT 1 FROM videos WHERE state = 'transcribing' "
                                       "AND lease_owner LIKE %s", (f"{victim}:%",)),
                 timeout=180, what=f"{victim} mid-transcription")
        daemons[victim].send_signal(signal.SIGKILL)
        daemons[victim].wait(timeout=30)
        held = query(pg_url, "SELECT id, state FROM videos WHERE lease_owner LIKE %s",
                     (f"{victim}:%",))
        assert any(state == "transcribing" for _, state in held)

        def finished() -> bool:
            (n,) = query(pg_url, "SELECT count(*) FROM videos WHERE state NOT IN ('done', "
                                 "'failed')")[0]
            return bool(n == 0)

        wait_for(finished, timeout=240, what="every video done or failed")
    finally:
        for d in daemons.values():
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
        codes = {h: d.wait(timeout=60) for h, d in daemons.items()}
        for log in logs.values():
            log.close()
    assert codes["host-a"] == 0 and codes["host-b"] == 0 and codes[victim] == -signal.SIGKILL
    states = dict(query(pg_url, "SELECT state, count(*) FROM videos GROUP BY state"))
    assert states == {"done": len(urls)}
    # the dead host's leases came back and its work was finished elsewhere
    assert query(pg_url, "SELECT id FROM videos WHERE lease_owner IS NOT NULL") == []
    for vid, state in held:
        stage = {"downloading": "download", "analyzing": "analyze",
                 "transcribing": "transcribe", "mining": "mine", "evaluating": "evaluate"}[state]
        hosts = query(pg_url, "SELECT host FROM events WHERE video_id = %s AND stage = %s AND "
                              "event = 'completed'", (vid, stage))
        assert hosts and all(h != victim for (h,) in hosts), (vid, stage, hosts)
    lost = {vid for (vid,) in query(pg_url, "SELECT video_id FROM events WHERE event = "
                                             "'audio_lost'")}
    twice = query(pg_url, "SELECT video_id, stage, count(*) FROM events WHERE event = "
                          "'completed' GROUP BY 1, 2 HAVING count(*) > 1")
    for vid, stage, _ in twice:  # only what the dead host held was done again
        assert vid in lost, (vid, stage)
    (n, distinct) = query(pg_url, "SELECT count(*), count(DISTINCT video_id) FROM events "
                                  "WHERE stage = 'evaluate' AND event = 'completed'")[0]
    assert n == distinct == len(urls)  # done exactly once each
    assert len(lost) < len(urls)
    # every host did work; and all three reported to status --hosts
    workers = {h for (h,) in query(pg_url, "SELECT DISTINCT host FROM events WHERE event = "
                                           "'completed'")}
    assert {"host-a", "host-b"} <= workers
    st = subprocess.run([sys.executable, "-m", "ytpiped", "status", "--hosts", "--json"],
                        env=envs["host-a"], capture_output=True, text=True, timeout=60)
    reported = {h["host"]: h for h in json.loads(st.stdout)}
    assert set(reported) == set(HOSTS)


@pytest.mark.slow
def test_two_hosts_in_one_pacing_group_keep_its_delay_between_their_downloads(
        servers: tuple[MediaServer, FakeOllama], pg_url: str, tmp_path: Path) -> None:
    media, _ = servers
    delay = 1.5
    # YouTube videos (the fake YouTube's): the group's pacing is YouTube's
    urls = youtube_urls(media, [f"{name}?copy=9" for name in MEDIA], prefix="groupvd")
    envs, logs = {}, {}
    for host in HOSTS[:2]:
        data = tmp_path / host
        data.mkdir()
        write_fake_config(data, delay_s=0.1)
        envs[host] = host_env(data, pg_url, host)
        envs[host].update({**youtube_env(media), "YTPIPED_DOWNLOAD__PACING_GROUP": "office",
                           **{f"YTPIPED_DOWNLOAD__DELAY_{p}_S": f"[{delay}, {delay}]"
                              for p in ("BUFFER_BUILD", "STEADY", "CATCH_UP")}})
        logs[host] = (tmp_path / f"{host}.log").open("ab")
    added = subprocess.run([sys.executable, "-m", "ytpiped", "add", *urls], env=envs["host-a"],
                           capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    codes = run_until(envs, logs, lambda: query(
        pg_url, "SELECT count(*) FROM events WHERE stage = 'download' AND event = "
                "'completed'")[0][0] == len(urls), timeout=180, what="every video downloaded")
    assert codes == [0, 0]
    hosts = {h for (h,) in query(pg_url, "SELECT DISTINCT host FROM events WHERE stage = "
                                         "'download' AND event = 'completed'")}
    assert hosts == {"host-a", "host-b"}  # both downloaded, taking turns
    published = {k for (k,) in query(pg_url, "SELECT key FROM daemon_state WHERE key LIKE "
                                             "'stage:download%%'")}
    assert published == {"stage:download@host-a", "stage:download@host-b"}  # one per host
    spans: dict[str, tuple[float, float]] = {}  # yt-dlp fetches a URL twice: probe, download
    for start, end, key in media.served:
        if "copy=9" in key:
            first, last = spans.get(key, (start, end))
            spans[key] = (min(first, start), max(last, end))
    bodies = sorted(spans.values())
    assert len(bodies) == len(urls)
    # a download starts only `delay` after the group's previous one ended: the server's
    # times bound the downloader's from the safe side (its end is taken before the last
    # bytes leave, its start after the request came), however late a thread runs
    assert all(nxt[0] - prev[1] >= delay - 0.01 for prev, nxt in itertools.pairwise(bodies))


@pytest.mark.slow
def test_a_transcribing_host_and_a_mining_host_hand_results_over_through_the_store(
        servers: tuple[MediaServer, FakeOllama], pg_url: str, tmp_path: Path) -> None:
    """No shared files: the transcripts made on one host reach the other through the store,
    the claims mined there reach the first for its export."""
    media, llm = servers
    urls = [media.media_url(name, copy=7) for name in ("coffee.m4a", "ocean.mp3", "memory.wav")]
    roles = {"gpu-host": '["download", "analyze", "transcribe"]',
             "llm-host": '["mine", "evaluate"]'}
    envs, logs = {}, {}
    for host, stages in roles.items():
        data = tmp_path / host
        data.mkdir()
        write_config(data / "ytpiped.toml", data, llm.url)
        envs[host] = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
        envs[host].update({"YTPIPED_CONFIG": str(data / "ytpiped.toml"),
                           "YTPIPED_STORE__URL": pg_url, "YTPIPED_DAEMON__HOST_ID": host,
                           "YTPIPED_DAEMON__STAGES": stages})
        logs[host] = (tmp_path / f"{host}.log").open("ab")
    added = subprocess.run([sys.executable, "-m", "ytpiped", "add", *urls],
                           env=envs["gpu-host"], capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    codes = run_until(envs, logs, lambda: query(
        pg_url, "SELECT count(*) FROM videos WHERE state IN ('done', 'failed')")[0][0] ==
        len(urls), timeout=300, what="every video done or failed")
    assert codes == [0, 0]
    assert dict(query(pg_url, "SELECT state, count(*) FROM videos GROUP BY 1")) == \
        {"done": len(urls)}
    by_stage = dict(query(pg_url, "SELECT stage, array_agg(DISTINCT host) FROM events WHERE "
                                  "event = 'completed' AND stage IS NOT NULL GROUP BY 1"))
    assert by_stage["transcribe"] == ["gpu-host"] and by_stage["mine"] == ["llm-host"]
    ids = [vid for (vid,) in query(pg_url, "SELECT id FROM videos")]
    gpu, mining = tmp_path / "gpu-host", tmp_path / "llm-host"
    for vid in ids:  # transcribed on one host, mined from the store's copy on the other
        made = json.loads((gpu / "transcripts" / f"{vid}.json").read_text())
        fetched = json.loads((mining / "transcripts" / f"{vid}.json").read_text())
        assert fetched == made
        assert (mining / "mining" / f"{vid}.json").exists()
        assert not (gpu / "mining" / f"{vid}.json").exists()
    out = tmp_path / "export"
    exported = subprocess.run([sys.executable, "-m", "ytpiped", "export", "--out", str(out),
                               "--format", "jsonl"], env=envs["gpu-host"], capture_output=True,
                              text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    assert f"fetched {len(ids)} result files" in exported.stderr
    assert (out / "claims.jsonl").read_text().count("\n") >= 1  # mined on the other host
    for vid in ids:
        assert json.loads((gpu / "mining" / f"{vid}.json").read_text()) == \
            json.loads((mining / "mining" / f"{vid}.json").read_text())
