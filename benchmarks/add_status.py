"""`ytpiped add` of 500,000 lines and `status --json` latency on the resulting database.

Runs the real CLI as subprocesses (interpreter start-up included, as a user sees it) and
also times the in-process parts. Prints a table, then one JSON object as the last line.

    python -m benchmarks.add_status [--lines 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ytpiped import status as status_mod
from ytpiped.store import SqliteDB, db_path


def make_lines(n: int, rng: random.Random) -> list[str]:
    alphabet = string.ascii_letters + string.digits + "-_"
    forms = ["https://www.youtube.com/watch?v={}", "https://youtu.be/{}?si=abcdef",
             "{}", "https://m.youtube.com/watch?v={}&t=42s", "https://www.youtube.com/shorts/{}"]
    lines = []
    for i in range(n):
        vid = "".join(rng.choice(alphabet) for _ in range(11))
        lines.append(forms[i % len(forms)].format(vid))
    return lines


def run_cli(data: Path, *args: str, stdin: str | None = None) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YTPIPED_")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "ytpiped", "--data-dir", str(data), *args],
                       env=env, input=stdin, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, r.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--status-runs", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        urls = Path(tmp) / "urls.txt"
        lines = make_lines(args.lines, rng)
        urls.write_text("\n".join(lines) + "\n")
        add_s, out = run_cli(data, "add", str(urls))
        readd_s, out2 = run_cli(data, "add", str(urls))
        cli_status = [run_cli(data, "status", "--json")[0] for _ in range(args.status_runs)]
        noop_s = min(run_cli(data, "--help")[0] for _ in range(3))
        store = SqliteDB(db_path(data), readonly=True)
        inproc = []
        for _ in range(args.status_runs):
            t0 = time.perf_counter()
            status_mod.build(store, time.time(), None)
            inproc.append(time.perf_counter() - t0)
        store.close()
    rows = [
        ("add (new db)", f"{args.lines:,} lines", f"{add_s:.2f} s", out.splitlines()[0]),
        ("add again (all duplicate)", f"{args.lines:,} lines", f"{readd_s:.2f} s",
         out2.splitlines()[0]),
        ("status --json (CLI process)", "median", f"{statistics.median(cli_status)*1000:.0f} ms",
         f"of which interpreter start ≈ {noop_s*1000:.0f} ms"),
        ("status build (in process)", "median", f"{statistics.median(inproc)*1000:.1f} ms", ""),
    ]
    for r in rows:
        print(f"{r[0]:<30}{r[1]:>16}{r[2]:>12}   {r[3]}")
    print(json.dumps({
        "lines": args.lines,
        "add_s": round(add_s, 3),
        "add_lines_per_s": round(args.lines / add_s),
        "readd_s": round(readd_s, 3),
        "status_cli_median_ms": round(statistics.median(cli_status) * 1000, 1),
        "status_inprocess_median_ms": round(statistics.median(inproc) * 1000, 2),
        "cli_startup_ms": round(noop_s * 1000, 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
