"""`ytpiped status` with the daemon running, against the interpreter's own start-up.

Starts a real daemon (fake stages, so no media or models) on a temporary data dir with
VIDEOS videos, waits until it has done them all, then times, interleaved, RUNS of each:

  python -c pass                      the floor: interpreter start-up (site, venv)
  python -m ytpiped status --json     what scripts call
  BIN/ytpiped status --json           the installed entry point, when there is one
  python -m ytpiped status            the human table
  in process: the socket round trip   what the daemon itself takes to answer

each twice: with a bytecode cache (a private PYTHONPYCACHEPREFIX, warmed first: what an
installed ytpiped sees) and without one (PYTHONDONTWRITEBYTECODE=1: every start compiles
ytpiped's modules, as in this development environment). Wall and CPU milliseconds
(medians; the wall minimum too, the run least disturbed by other work); ratios to the
start-up of the same runs. Prints a table, then one JSON object as the last line.

    python -m benchmarks.status_latency [--runs 15] [--videos 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ytpiped import control_client
from ytpiped.store import NewVideo, SqliteDB, db_path

GOAL_MS = 150.0


def _env(data: Path, pycache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    env.update({"YTPIPED_DATA_DIR": str(data),
                "YTPIPED_DAEMON__STAGE_FACTORY": "ytpiped.testing.stages:fake_pipeline",
                "YTPIPED_DAEMON__POLL_INTERVAL_S": "0.2"})
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _time(cmd: list[str], env: dict[str, str], src: str | None) -> tuple[float, float]:
    """(wall, CPU) milliseconds `cmd` takes; CPU time (user + system) hardly grows when
    other work shares the machine, wall time does. With `src`, run in that checkout of
    ytpiped (`python -m` imports from the working directory first)."""
    if src is not None:
        env = {**env, "PYTHONPATH": src}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=src, stdout=subprocess.DEVNULL, check=True)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _done(data: Path) -> int:
    st = json.loads(control_client.get(data, "/status") or b"{}")
    return int(st.get("videos", {}).get("by_state", {}).get("done", -1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each command per mode")
    ap.add_argument("--videos", type=int, default=2000, help="videos in the database")
    ap.add_argument("--compare", metavar="SRC",
                    help="also time `status --json` of the ytpiped in this checkout (e.g. a "
                         "`git worktree` of the commit before), in the same runs")
    args = ap.parse_args()
    py = sys.executable
    entry = Path(py).with_name("ytpiped")
    status = [py, "-m", "ytpiped", "status", "--json"]
    commands: dict[str, tuple[list[str], str | None]] = {
        "python -c pass": ([py, "-c", "pass"], None),
        "python -m ytpiped status --json": (status, None),
        "python -m ytpiped status": ([py, "-m", "ytpiped", "status"], None),
    }
    if entry.exists():
        commands["ytpiped status --json (entry point)"] = ([str(entry), "status", "--json"],
                                                           None)
    if args.compare:
        commands["status --json of --compare SRC"] = (status, args.compare)
    with tempfile.TemporaryDirectory() as tmp:
        data, pycache = Path(tmp) / "data", Path(tmp) / "pycache"
        store = SqliteDB(db_path(data), now=time.time())
        store.add_videos([NewVideo(f"bench{i:06d}", f"https://example.org/{i}", "video")
                          for i in range(args.videos)], now=time.time())
        store.close()
        modes = {"cached": _env(data, pycache), "nocache": _env(data, None)}
        with (Path(tmp) / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen([py, "-m", "ytpiped", "run"], env=modes["cached"],
                                      stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: control_client.get(data, "/healthz") == b"ok\n", "the daemon")
            # measured once the fake stages have finished every video: a daemon that
            # waits (on the network, on Whisper processes) is what `status` usually meets
            _wait(lambda: _done(data) == args.videos, "every video to be done")
            for cmd, src in commands.values():  # warm the bytecode cache and the page cache
                _time(cmd, modes["cached"], src)
            times: dict[tuple[str, str], list[float]] = {}
            cpu: dict[tuple[str, str], list[float]] = {}
            socket_ms: list[float] = []
            for _ in range(args.runs):
                for mode, env in modes.items():
                    for name, (cmd, src) in commands.items():
                        wall, used = _time(cmd, env, src)
                        times.setdefault((mode, name), []).append(wall)
                        cpu.setdefault((mode, name), []).append(used)
                t0 = time.perf_counter()
                control_client.get(data, "/status")
                socket_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
        shutil.rmtree(pycache, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}  # the run least disturbed by other work
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"ytpiped status with the daemon running ({args.videos} videos), {args.runs} runs, "
          "ms: wall median, wall min, CPU median (user+system), wall ratio to `python -c "
          "pass`")
    print(f"{'':<40}{'-- with bytecode cache --':>30}{'-- without --':>30}")
    print(f"{'command':<40}" + f"{'wall':>8}{'min':>7}{'cpu':>7}{'ratio':>8}" * 2)
    for name in commands:
        row = f"{name:<40}"
        for mode in modes:
            k = (mode, name)
            row += (f"{med[k]:>8.1f}{best[k]:>7.1f}{cpu_med[k]:>7.1f}"
                    f"{med[k] / med[(mode, 'python -c pass')]:>8.2f}")
        print(row)
    print(f"{'socket round trip (in process)':<40}{statistics.median(socket_ms):>8.1f}"
          f"{min(socket_ms):>7.1f}")
    result: dict[str, object] = {"runs": args.runs, "videos": args.videos, "goal_ms": GOAL_MS,
                                 "socket_roundtrip_ms": round(statistics.median(socket_ms), 1)}
    keys = {"python -c pass": "python_start",
            "python -m ytpiped status --json": "status_json",
            "python -m ytpiped status": "status_text",
            "ytpiped status --json (entry point)": "status_entry_point",
            "status --json of --compare SRC": "compare_status_json"}
    for mode in modes:
        part: dict[str, object] = {}
        for name in commands:
            part[f"{keys[name]}_ms"] = round(med[(mode, name)], 1)
            part[f"{keys[name]}_cpu_ms"] = round(cpu_med[(mode, name)], 1)
        took = med[(mode, "python -m ytpiped status --json")]
        part["status_json_min_ms"] = round(best[(mode, "python -m ytpiped status --json")], 1)
        part["status_over_start_ratio"] = round(took / med[(mode, "python -c pass")], 2)
        if args.compare:
            part["status_over_compare_ratio"] = round(
                took / med[(mode, "status --json of --compare SRC")], 3)
        part["under_goal"] = took < GOAL_MS
        result[mode] = part
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
