"""The commands that find things: `search`, `reindex`, `ls`, `show`, `logs` (their
arguments and what they print). cli.py lists them with the other commands; the work is in
ytpiped/search.py and ytpiped/listing.py."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ytpiped import config as cfg
from ytpiped.errors import EXIT_FAILURE, EXIT_OK, UsageError
from ytpiped.text import printable

if TYPE_CHECKING:
    from ytpiped.store.blocking import SyncDB
    from ytpiped.store.model import LogEvent


def search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="+", metavar="QUERY",
                   help='words (all must appear), "an exact phrase", a OR b, -word or NOT '
                        "word to exclude, prefix*, (groups); English words match their other "
                        "forms (panels finds panel)")
    p.add_argument("--in", dest="where", choices=["claims", "transcripts", "videos", "all"],
                   default="all", help="search mined claims (text and evidence), transcript "
                                       "passages, videos (title, tags, chapter titles, "
                                       "channel, description), or all three")
    p.add_argument("--channel", metavar="NAME", help="only this channel's videos (any case)")
    p.add_argument("--since", metavar="DATE",
                   help="only videos uploaded on or after DATE (YYYY-MM-DD)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N hits")
    p.add_argument("--json", action="store_true",
                   help='machine-readable: {"query", "in", "hits": [{"kind", "video_id", '
                        '"title", "channel", "upload_date", "url", "link", "start_s", "time", '
                        '"snippet", "text", "score", ...}]}; a video hit has "field" (where '
                        'it matched) and no time')


def reindex_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help='machine-readable report: {"videos", "passages", "claims", '
                        '"metadata"}')


def ls_arguments(p: argparse.ArgumentParser) -> None:
    from ytpiped.states import State

    p.add_argument("--state", choices=[s.value for s in State], metavar="STATE",
                   help="only videos in this state: " + ", ".join(s.value for s in State))
    p.add_argument("--failed", action="store_true", help="only failed videos (--state failed)")
    p.add_argument("--kind", metavar="KIND",
                   help="only videos that failed with this error kind (as `status` lists them)")
    p.add_argument("--type", choices=["video", "playlist", "channel", "generic"],
                   help="only rows of this type (what `add` made of the URL)")
    p.add_argument("--channel", metavar="NAME", help="only this channel's videos (any case)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N videos")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per video")


def show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video_id", metavar="ID", help="a video id, as `ls` lists them")
    p.add_argument("--claims", type=int, default=5, metavar="N", help="top claims to show")
    p.add_argument("--json", action="store_true",
                   help='machine-readable: {"video", "files", "history", "claims": {"total", '
                        '"top"}}')


def logs_arguments(p: argparse.ArgumentParser) -> None:
    from ytpiped.states import STAGE_NAMES

    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new events until Ctrl-C")
    p.add_argument("--video", metavar="ID", help="only this video's events")
    p.add_argument("--stage", choices=STAGE_NAMES, help="only this stage's events")
    p.add_argument("--kind", metavar="KIND", help="only events of this error kind")
    p.add_argument("--limit", type=int, default=50, metavar="N",
                   help="the newest N events first shown")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="how often --follow looks for new events")
    p.add_argument("--json", action="store_true", help="one JSON object per line per event")


@contextmanager
def _reading(settings: cfg.Settings) -> Iterator[SyncDB]:
    """The store, read-only; a clear error when there is none or it predates search."""
    import sqlite3

    from ytpiped.store import db_path, open_sync

    db = open_sync(settings, readonly=True)
    if db is None:
        raise NoDatabase(f"no database in {settings.data_path} (nothing added there yet; is "
                         "--data-dir or data_dir right?)")
    try:
        yield db
    except sqlite3.OperationalError as exc:
        if "no such table: search_videos" in str(exc):  # migration 6 fills it
            raise NoDatabase(f"{db_path(settings.data_path)} predates the video index: run "
                             "`ytpiped db migrate` (or start the daemon)") from None
        if "no such table: search_" not in str(exc):
            raise
        raise NoDatabase(f"{db_path(settings.data_path)} predates search: run `ytpiped db "
                         "migrate` (or start the daemon), then `ytpiped reindex`") from None
    finally:
        db.close()


class NoDatabase(Exception):
    """Nothing to read (exit 1)."""


def _failing(exc: NoDatabase) -> int:
    print(printable(f"error: {exc}"), file=sys.stderr)
    return EXIT_FAILURE


def cmd_search(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import search

    text = " ".join(args.query)
    since = search.parse_since(args.since) if args.since else None
    try:
        with _reading(settings) as db:
            hits = search.run(db, text, args.where, channel=args.channel, since=since,
                              limit=args.limit)
            counts = db.search_counts() if not hits else None
    except NoDatabase as exc:
        return _failing(exc)
    if args.json:
        print(json.dumps({"query": text, "in": args.where,
                          "hits": [search.hit_json(h) for h in hits]}, ensure_ascii=False))
        return EXIT_OK
    if hits:
        print(search.format_hits(hits, color=sys.stdout.isatty()))
    elif counts is not None and not any(counts.get(k) for k in search.COUNTED[args.where]):
        print("no matches: the search index is empty (videos are indexed as they are "
              "downloaded, transcribed and evaluated; `ytpiped reindex` builds it from the "
              "files)")
    else:
        print(printable(f"no matches for {text!r}"))
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import search
    from ytpiped.store import open_sync

    db = open_sync(settings, readonly=False)
    assert db is not None

    def progress(done: search.Reindexed) -> None:
        print(f"  … {done.videos} videos", file=sys.stderr, flush=True)

    try:
        done = search.reindex(db, settings.data_path, progress)
    finally:
        db.close()
    if args.json:
        print(json.dumps(done.to_json()))
    else:
        print(f"indexed {done.videos} videos: {done.passages} transcript passages, "
              f"{done.claims} claims, {done.metadata} videos' metadata")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import listing

    if args.failed and args.state not in (None, "failed"):
        raise UsageError(f"--failed and --state {args.state}: pick one")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be 1 or more")
    try:
        with _reading(settings) as db:
            rows = db.find_videos(state="failed" if args.failed else args.state,
                                  error_kind=args.kind, kind=args.type, channel=args.channel,
                                  limit=args.limit)
    except NoDatabase as exc:
        return _failing(exc)
    if args.json:
        print(json.dumps([listing.video_json(r) for r in rows], ensure_ascii=False))
    else:
        print(listing.format_ls(rows))
    return EXIT_OK


def cmd_show(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import listing

    try:
        with _reading(settings) as db:
            found = listing.detail(db, settings.data_path, args.video_id, max(0, args.claims))
    except NoDatabase as exc:
        return _failing(exc)
    if found is None:
        return _failing(NoDatabase(f"no video {args.video_id!r} in {settings.data_path} "
                                   "(`ytpiped ls` lists the ids)"))
    if args.json:
        print(json.dumps(listing.detail_json(found), ensure_ascii=False))
    else:
        print(listing.format_show(found))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import listing

    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: must be 0 or more")
    if args.interval <= 0:
        raise UsageError(f"--interval {args.interval}: must be above 0")

    def show(e: LogEvent) -> None:
        print(json.dumps(listing.event_json(e), ensure_ascii=False) if args.json
              else listing.format_event(e), flush=args.follow)

    filters = {"video_id": args.video, "stage": args.stage, "kind": args.kind}
    try:
        with _reading(settings) as db:
            last = 0
            for e in db.event_log(limit=args.limit, **filters):
                show(e)
                last = e.id
            if not args.follow:
                return EXIT_OK
            if last == 0:  # nothing shown: follow from the newest event there is
                newest = db.event_log(limit=1)
                last = newest[-1].id if newest else 0

            def wait() -> bool:
                time.sleep(args.interval)  # a poll interval, like `status --watch`
                return True

            try:
                for e in listing.follow(db, wait=wait, after=last, **filters):
                    show(e)
            except KeyboardInterrupt:
                return EXIT_OK
    except NoDatabase as exc:
        return _failing(exc)
    return EXIT_OK  # pragma: no cover - follow only ends with Ctrl-C
