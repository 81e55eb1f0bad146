"""`ytpiped search` on a large library: VIDEOS synthetic one-hour transcripts with CLAIMS
claims each, indexed the way the worker indexes them (one transaction per video through
`SqliteDB.index_video`, transcripts cut into passages by `search.passages`), then QUERIES
queries of each kind timed through `search.run` (what `ytpiped search` calls), in the
claims index, the transcript index and both.

Text is drawn from a 30,000-word synthetic vocabulary with Zipf-like frequencies (as
speech has), so a query's word can be common (in most passages), middling or rare; query
kinds: one word of each band, two words, a phrase copied from a transcript, `a OR b`, a
prefix, and a middling word filtered by channel or by upload date. Prints the build
time, the database size and a table of p50/p99/max milliseconds per kind, then one JSON
object as the last line.

    python -m benchmarks.search [--videos 7000] [--claims 100] [--queries 30]
                                [--db PATH (reuse a database built before)] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ytpiped import search
from ytpiped.store import NewVideo, SqliteDB
from ytpiped.store.search import ClaimDoc, SearchDocs

GOAL_MS = 100.0
VOCAB = 30_000
WORDS_PER_SEGMENT = 12
SEGMENT_S = 5.0
CHANNELS = 200
_SYL = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]


def vocabulary(rng: np.random.Generator) -> list[str]:
    """VOCAB distinct pronounceable words, the most frequent first (shorter, as in
    speech): every one- and two-syllable word, then three-syllable ones."""
    short = [*_SYL, *(a + b for a in _SYL for b in _SYL)]
    order = rng.permutation(len(short) - len(_SYL)) + len(_SYL)
    words = _SYL + [short[i] for i in order]
    seen = set(words)
    while len(words) < VOCAB:
        w = "".join(_SYL[i] for i in rng.integers(0, len(_SYL), 3))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


class Text:
    """Zipf-distributed words (rank r with weight 1 / (r + 2.7) ** 1.05)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.words = np.array(vocabulary(rng))
        weights = 1.0 / (np.arange(VOCAB) + 2.7) ** 1.05
        self.cdf = np.cumsum(weights / weights.sum())

    def draw(self, n: int) -> np.ndarray:
        idx = np.searchsorted(self.cdf, self.rng.random(n))
        return self.words[np.minimum(idx, VOCAB - 1)]

    def sentence(self, n: int) -> str:
        return " ".join(self.draw(n).tolist())


def video_docs(text: Text, minutes: int, claims: int) -> SearchDocs:
    n_seg = int(minutes * 60 / SEGMENT_S)
    words = text.draw(n_seg * WORDS_PER_SEGMENT).reshape(n_seg, WORDS_PER_SEGMENT)
    segs = [{"start": i * SEGMENT_S, "end": (i + 1) * SEGMENT_S, "text": " ".join(row)}
            for i, row in enumerate(words.tolist())]
    found = tuple(ClaimDoc(i, text.sentence(14), text.sentence(24), "factual",
                           float(i * minutes * 60 / claims), float(i * minutes * 60 / claims + 8),
                           i + 1, 10 - i % 10) for i in range(claims))
    return SearchDocs(passages=search.passages(segs), claims=found)


def build(path: Path, videos: int, claims: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    text = Text(rng)
    t0 = time.perf_counter()
    db = SqliteDB(path, now=0)
    try:
        ids = [f"b{i:010d}" for i in range(videos)]
        db.add_videos([NewVideo(v, f"https://www.youtube.com/watch?v={v}", "video")
                       for v in ids], now=0)
        for _ in range(0, videos, 500):
            for r in db.claim("download", "bench", now=1, lease_s=3600, limit=500):
                n = int(r.id[1:])
                db.complete(r.id, "bench", "downloading", "downloaded", now=2, fields={
                    "title": text.sentence(6), "channel": f"channel {n % CHANNELS}",
                    "upload_date": f"{2015 + n % 11}{1 + n % 12:02d}{1 + n % 28:02d}",
                    "duration_s": 3600.0})
        t_gen = 0.0
        for i, vid in enumerate(ids):
            g = time.perf_counter()
            docs = video_docs(text, 60, claims)
            t_gen += time.perf_counter() - g
            db.index_video(vid, docs)
            if (i + 1) % 500 == 0:
                print(f"  indexed {i + 1}/{videos} videos "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        counts = db.search_counts()
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    total = time.perf_counter() - t0
    return {"build_s": round(total, 1), "generate_s": round(t_gen, 1),
            "index_s": round(total - t_gen, 1), "passages": counts["passages"],
            "claims": counts["claims"]}


def queries(words: list[str], sample: Callable[[], str], rng: np.random.Generator,
            n: int) -> dict[str, list[tuple[str, dict[str, str]]]]:
    def pick(lo: int, hi: int) -> str:
        return words[int(rng.integers(lo, hi))]

    out: dict[str, list[tuple[str, dict[str, str]]]] = {
        "common word": [(pick(5, 50), {}) for _ in range(n)],
        "middling word": [(pick(500, 3000), {}) for _ in range(n)],
        "rare word": [(pick(15_000, VOCAB), {}) for _ in range(n)],
        "two words": [(f"{pick(50, 500)} {pick(500, 3000)}", {}) for _ in range(n)],
        "phrase": [(f'"{sample()}"', {}) for _ in range(n)],
        "a OR b": [(f"{pick(500, 3000)} OR {pick(500, 3000)}", {}) for _ in range(n)],
        "prefix*": [(pick(3000, 9000)[:5] + "*", {}) for _ in range(n)],
        "--channel": [(pick(200, 1000), {"channel": f"channel {int(rng.integers(CHANNELS))}"})
                      for _ in range(n)],
        "--since": [(pick(200, 1000), {"since": "20240101"}) for _ in range(n)],
    }
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=7000)
    p.add_argument("--claims", type=int, default=100)
    p.add_argument("--queries", type=int, default=30, help="queries of each kind")
    p.add_argument("--db", type=Path, help="use (or build once and keep) this database")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="ytpiped-search-bench-")
        path = Path(tmp.name) / "ytpiped.db"
    else:
        path = args.db
    built: dict[str, float] = {}
    if not path.exists():
        print(f"building {args.videos} one-hour transcripts x {args.claims} claims in {path}",
              file=sys.stderr)
        built = build(path, args.videos, args.claims, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    words = vocabulary(np.random.default_rng(args.seed))  # the build's vocabulary
    db = SqliteDB(path, readonly=True)
    try:
        counts = db.search_counts()
        sample_rows = [h.text for h in search.run(db, words[3], "transcripts", limit=50)]

        def sample() -> str:
            t = sample_rows[int(rng.integers(len(sample_rows)))].split()
            i = int(rng.integers(len(t) - 2))
            return " ".join(t[i:i + 3])

        plan = queries(words, sample, rng, args.queries)
        search.run(db, words[10], "all")  # warm the page cache
        rows = []
        every: list[float] = []
        for kind, qs in plan.items():
            for where in ("claims", "transcripts", "all"):
                ms: list[float] = []
                hits = 0
                for text, opts in qs:
                    t = time.perf_counter()
                    found = search.run(db, text, where, limit=20, **opts)
                    ms.append((time.perf_counter() - t) * 1000)
                    hits += len(found)
                every += ms
                rows.append({"query": kind, "in": where, "p50_ms": round(pct(ms, 0.5), 2),
                             "p99_ms": round(pct(ms, 0.99), 2), "max_ms": round(max(ms), 2),
                             "hits_per_query": round(hits / len(qs), 1)})
    finally:
        db.close()
    size_mb = round(sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))
                    / 1e6, 1)
    print(f"{counts['videos']} videos, {counts['passages']} transcript passages, "
          f"{counts['claims']} claims; database {size_mb} MB"
          + (f"; built in {built['build_s']} s ({built['index_s']} s indexing)"
             if built else ""))
    print(f"{'query':<15}{'in':<13}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'hits':>7}")
    for r in rows:
        print(f"{r['query']:<15}{r['in']:<13}{r['p50_ms']:>9}{r['p99_ms']:>9}"
              f"{r['max_ms']:>9}{r['hits_per_query']:>7}")
    result = {"benchmark": "search", "videos": counts["videos"],
              "passages": counts["passages"], "claims": counts["claims"], "db_mb": size_mb,
              **built, "queries": len(every), "p50_ms": round(pct(every, 0.5), 2),
              "p99_ms": round(pct(every, 0.99), 2), "max_ms": round(max(every), 2),
              "goal_ms": GOAL_MS, "cores": os.cpu_count(), "by_kind": rows}
    print(f"all {len(every)} queries: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
          f"max {result['max_ms']} ms (goal: under {GOAL_MS:.0f} ms)")
    print(json.dumps(result))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
