"""Command line: parse, call, print, exit code. Thin by design (DESIGN.md §3).

Exit codes: 0 ok, 1 runtime failure (a damaged database too: it is data, not
configuration), 2 usage or configuration error, 3 another daemon already owns the data dir.

Imports are per command: `ytpiped status` with the daemon running loads the config, asks
the socket with the standard library and prints, in about the interpreter's own start-up
time again (benchmarks/status_latency.py); the store, logging and the stages load only
for the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ytpiped import __version__
from ytpiped import cli_find as find
from ytpiped import config as cfg
from ytpiped.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    UsageError,
    YtpipedError,
)
from ytpiped.text import printable, printable_lines

if TYPE_CHECKING:
    from ytpiped.store.blocking import SyncDB


ENV_HELP = """environment:
  YTPIPED_CONFIG              config file (when --config is not given; else the
                              first that exists of $XDG_CONFIG_HOME/ytpiped/ytpiped.toml
                              (~/.config/ytpiped/ytpiped.toml) and
                              /etc/ytpiped/ytpiped.toml)
  YTPIPED_<SECTION>__<KEY>    override any config key, e.g.
                              YTPIPED_DOWNLOAD__MAX_VIDEOS_PER_HOUR=100,
                              YTPIPED_DATA_DIR=/srv/ytpiped
precedence: defaults < config file < environment < --data-dir/--set flags"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows an option's default where it says something: not for flags (False), options
    with no default (None) or empty lists."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line. Given `argv`, only the command it names gets its subparser (every
    one costs about 1 ms to build, more than `status` spends talking to the daemon); the
    full parser otherwise, and for help that lists every command."""
    p = argparse.ArgumentParser(
        prog="ytpiped", formatter_class=_Formatter, epilog=ENV_HELP,
        description="Turn thousands of YouTube URLs into transcripts and mined knowledge: "
                    "a daemon that downloads, analyzes, transcribes, mines and evaluates, "
                    "persisting every step in SQLite.")
    p.add_argument("--version", action="version", version=f"ytpiped {__version__}")
    p.add_argument("--config", metavar="PATH",
                   help="TOML config file (default: $YTPIPED_CONFIG, else "
                        "$XDG_CONFIG_HOME/ytpiped/ytpiped.toml, else "
                        "/etc/ytpiped/ytpiped.toml, the first that exists)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="data directory (database, audio, outputs); default from config: "
                        "~/.local/share/ytpiped")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config key, e.g. --set download.max_attempts=3 "
                        "(repeatable)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   help="log level (default: info for run, warning for other commands)")
    only = None if argv is None else _command_named(p, argv)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, help, add_arguments in SUBCOMMANDS:
        if only is None or name == only:
            add_arguments(_subparser(sub, name, help))
    return p


def _command_named(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The command `argv` runs, found past the global options and their values; None when
    top-level help or the version comes first, or no known command does."""
    takes_value = [s for a in parser._actions if a.nargs != 0 for s in a.option_strings]
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in ("-h", "--help", "--version", "--"):
            return None
        elif word.startswith("-"):  # an abbreviation (--conf) takes the value too
            skip = "=" not in word and any(s.startswith(word) for s in takes_value)
        else:
            return word if word in {name for name, _, _ in SUBCOMMANDS} else None
    return None


def _subparser(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
    made: argparse.ArgumentParser = parent.add_parser(
        name, help=help, description=help, formatter_class=_Formatter, epilog=ENV_HELP)
    return made


def _run_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--log-json", action="store_true", default=None,
                   help="JSON log lines even on a terminal (default: JSON unless on a TTY)")


def _add_arguments(a: argparse.ArgumentParser) -> None:
    a.add_argument("inputs", nargs="*", metavar="FILE|-|URL",
                   help="files with one URL or id per line ('-' = stdin; blank lines and "
                        "# comments ignored; a pipe or FIFO silent for add.read_timeout_s is "
                        "an error), or URLs/ids as arguments")
    a.add_argument("--priority", type=int, default=0, metavar="N",
                   help="claim these before lower ones in every stage (higher first; videos a "
                        "playlist, channel or feed adds inherit it)")
    a.add_argument("--follow", action="store_true",
                   help="follow the channels, playlists and podcast feeds given: listed again "
                        "every sources.follow_interval_h for new entries (`ytpiped follows`)")
    a.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="with --follow: this source's own filter, e.g. min_duration_s=600, "
                        "title_exclude=trailer (keys as in [sources]); repeatable")
    a.add_argument("--json", action="store_true", help="machine-readable report")


def _unfollow_arguments(u: argparse.ArgumentParser) -> None:
    u.add_argument("url", metavar="URL", help="the followed channel, playlist or feed")


def _status_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--json", action="store_true", help="print the status JSON")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument("--hosts", action="store_true",
                   help="the hosts sharing a PostgreSQL store: last heartbeat, silent or not, "
                        "jobs running per stage (with --json: the hosts list)")
    s.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="refresh interval with --watch")


def _retry_arguments(rt: argparse.ArgumentParser) -> None:
    from ytpiped.states import STAGE_NAMES

    rt.add_argument("video_ids", nargs="*", metavar="VIDEO_ID",
                    help="only these videos (default: every failed video the filters match); "
                         "a named video a filter skipped is queued anyway, its filters "
                         "bypassed from then on")
    rt.add_argument("--stage", choices=STAGE_NAMES, help="only videos that failed in this stage")
    rt.add_argument("--kind", help="only videos that failed with this error kind (as "
                                   "`status` lists them, e.g. network, forbidden)")
    rt.add_argument("--skipped", action="store_true",
                    help="queue every video a filter skipped (state skipped) anyway, its "
                         "filters bypassed from then on (failed videos are left alone)")
    rt.add_argument("--json", action="store_true",
                    help='machine-readable report: {"requeued": N, "skipped": M, "stage", '
                         '"kind", "video_ids"} (M: skipped videos queued anyway)')


def _remine_arguments(rm: argparse.ArgumentParser) -> None:
    rm.add_argument("video_ids", nargs="*", metavar="VIDEO_ID",
                    help="only these videos (default: every done video)")
    rm.add_argument("--all", action="store_true",
                    help="re-queue them even when nothing is stale")
    rm.add_argument("--dry-run", action="store_true", help="list what is stale; change nothing")
    rm.add_argument("--json", action="store_true",
                    help="machine-readable report of the stale videos and what was re-queued")


def _retranscribe_arguments(rt: argparse.ArgumentParser) -> None:
    rt.add_argument("video_ids", nargs="*", metavar="VIDEO_ID", help="these done videos")
    rt.add_argument("--all", action="store_true", help="every done video")
    rt.add_argument("--model", metavar="MODEL",
                    help="transcribe them with this model (name or path; kept per video "
                         "across restarts; default: transcribe.model_gpu / model_cpu)")
    rt.add_argument("--dry-run", action="store_true", help="say what would happen; change "
                                                           "nothing")
    rt.add_argument("--json", action="store_true",
                    help='machine-readable report: {"done", "dry_run", "model", "videos": '
                         '[{"id", "download", "source"}], "not_done", "requeued"}')


def _export_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--out", required=True, metavar="DIR",
                   help="folder to write to (created if missing; files there are replaced)")
    e.add_argument("--format", choices=["jsonl", "md", "csv", "transcripts"], default="jsonl",
                   help="jsonl: claims.jsonl (with URL and deep link) + evaluations.jsonl; "
                        "md: an Obsidian-style vault (a note per video, concept and person); "
                        "csv: claims.csv for spreadsheets; transcripts: one file per video "
                        "(--as)")
    e.add_argument("--as", dest="transcript_format", choices=["txt", "srt", "vtt", "json"],
                   default="txt", help="transcript file format (--format transcripts)")
    e.add_argument("--merged", action="store_true",
                   help="one transcripts.txt or .json for every video (--format transcripts "
                        "--as txt|json)")
    e.add_argument("--since", metavar="DATE",
                   help="only videos uploaded on or after DATE (YYYY-MM-DD)")
    e.add_argument("--channel", metavar="NAME", help="only this channel's videos (any case)")
    e.add_argument("--incremental", action="store_true",
                   help="only what changed since the last export into --out (remembered in "
                        "DIR/.ytpiped-export.json); jsonl/csv go to new claims-<time> files")
    e.add_argument("--json", action="store_true",
                   help='machine-readable report: {"format", "out", "videos", "unchanged", '
                        '"claims", "files"}')


def _transcribe_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--audio-dir", required=True, metavar="DIR",
                   help="folder of audio files to transcribe (files already transcribed in "
                        "--out are skipped)")
    t.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the transcripts, named after the inputs (talk.mp3 -> "
                        "talk.json; talk.mp3 beside talk.m4a -> talk.mp3.json)")
    t.add_argument("--recursive", action="store_true",
                   help="take the audio files of subfolders too (--out gets the same "
                        "subfolders)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: GPUs and CPU as the hardware allows; cpu or cuda: that alone")
    t.add_argument("--workers", type=int, metavar="N",
                   help="slots on the chosen device: the GPUs with cuda (or auto on a "
                        "machine with a GPU), else the CPU (default: from hardware)")
    t.add_argument("--model", metavar="MODEL",
                   help="model name or path for every slot (default: transcribe.model_gpu "
                        "and model_cpu)")
    t.add_argument("--language", metavar="LANG",
                   help="the language of every file, e.g. en (default: transcribe.language; "
                        "empty: detected per file)")
    t.add_argument("--formats", metavar="LIST", type=lambda v: [f.strip() for f in
                                                                 v.split(",") if f.strip()],
                   help="output formats, comma-separated: txt,srt,vtt,json (default: "
                        "transcribe.output_formats; the JSON is always written)")
    t.add_argument("--json", action="store_true",
                   help="machine-readable report, one entry per file (progress stays on "
                        "stderr)")


def _analyze_arguments(an: argparse.ArgumentParser) -> None:
    an.add_argument("file", metavar="FILE", help="the audio or video file")
    an.add_argument("--json", action="store_true", help="machine-readable report")


def _json_only(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable report")


def _stage_argument(pr: argparse.ArgumentParser) -> None:
    from ytpiped.states import STAGE_NAMES

    pr.add_argument("stage", choices=STAGE_NAMES, metavar="STAGE",
                    help=f"the stage: {', '.join(STAGE_NAMES)}")


def _web_arguments(w: argparse.ArgumentParser) -> None:
    w.add_argument("--bind", dest="web_bind", default=None,
                   help="IP address to listen on (web.bind; default 127.0.0.1)")
    w.add_argument("--port", dest="web_port", type=int, default=None,
                   help="TCP port (web.port; default 8765, 0: any free port)")


def _config_arguments(c: argparse.ArgumentParser) -> None:
    csub = c.add_subparsers(dest="config_command", metavar="show|check")
    cs = _subparser(csub, "show", "effective configuration with the source of each value")
    how = cs.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true",
                     help='machine-readable: {"KEY": {"value": ..., "source": ...}}')
    how.add_argument("--toml", action="store_true",
                     help="a TOML config file of the effective values (sources as comments) "
                          "that `config check` accepts")
    cc = _subparser(csub, "check", "validate a config file with the YTPIPED_* environment and "
                                   "--set flags as `run` would use them; every error at once "
                                   "(exit 2 if invalid; unknown YTPIPED_* variables are errors "
                                   "here)")
    cc.add_argument("file", nargs="?", metavar="FILE",
                    help="file to check (default: the one --config, YTPIPED_CONFIG or the "
                         "lookup finds)")


def _db_arguments(d: argparse.ArgumentParser) -> None:
    dsub = d.add_subparsers(dest="db_command", metavar="check|backup|migrate|copy")
    dc = _subparser(dsub, "check", "run SQLite's integrity_check on DATA/ytpiped.db "
                                   "(read-only); exit 1 and list the problems if it is damaged "
                                   "(SQLite store only)")
    dc.add_argument("--json", action="store_true", help="machine-readable report")
    db = _subparser(dsub, "backup", "copy DATA/ytpiped.db to FILE with SQLite's online backup "
                                    "API (consistent while the daemon writes); restore: stop "
                                    "the daemon, copy FILE to DATA/ytpiped.db, delete "
                                    "ytpiped.db-wal/-shm (SQLite store only: use pg_dump for "
                                    "PostgreSQL)")
    db.add_argument("file", metavar="FILE", help="where the backup goes")
    db.add_argument("--force", action="store_true", help="replace FILE if it exists")
    dm = _subparser(dsub, "migrate", "create or upgrade the schema of the store `store.url` "
                                     "names (the daemon does this at start too; run it once "
                                     "before starting several hosts)")
    dm.add_argument("--json", action="store_true", help="machine-readable report")
    dy = _subparser(dsub, "copy", "copy this data dir's SQLite database (every video, attempt "
                                  "count, event, part, speed sample and daemon state) into an "
                                  "empty PostgreSQL database; stop the daemon first; the "
                                  "SQLite file is left as it is")
    dy.add_argument("--to", required=True, metavar="URL",
                    help="postgresql://USER@HOST:PORT/DB of an empty database (a password is "
                         "better given in PGPASSWORD or ~/.pgpass)")
    dy.add_argument("--json", action="store_true", help="machine-readable report")


def _completion_arguments(co: argparse.ArgumentParser) -> None:
    co.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL",
                    help="bash, zsh or fish")


#: (name, help, how to add its arguments), in the order `--help` lists them
SUBCOMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = [
    ("run", "run the daemon in the foreground (what systemd starts)", _run_arguments),
    ("add", "queue URLs / video ids / playlists / channels; duplicates are skipped",
     _add_arguments),
    ("status", "per-state counts, stage rates, ETA, failures and suggestions",
     _status_arguments),
    ("follows", "followed channels, playlists and feeds: last check, entries found, errors",
     _json_only),
    ("unfollow", "stop following a channel, playlist or feed (its videos stay)",
     _unfollow_arguments),
    ("retry", "re-queue failed videos (all, or filtered by stage, kind or id)",
     _retry_arguments),
    ("remine", "mine done videos again whose results a new prompt version or model made stale "
               "(windows still current are kept)", _remine_arguments),
    ("retranscribe", "transcribe done videos again (a model upgrade), downloading the audio "
                     "again where it was not kept, then mine and evaluate them",
     _retranscribe_arguments),
    ("search", "full-text search of mined claims, transcripts and videos' metadata: ranked "
               "hits with a deep link to the moment in the video", find.search_arguments),
    ("reindex", "rebuild the search indexes from the transcripts, mining results and "
                "videos' metadata in the data dir", find.reindex_arguments),
    ("ls", "list videos: id, state, attempts, length, channel, title (filter by state, "
           "error kind, channel)", find.ls_arguments),
    ("show", "one video: metadata, URL, files, state history, errors, top claims",
     find.show_arguments),
    ("logs", "the event log (every state change, retry, cooldown and failure); -f follows it",
     find.logs_arguments),
    ("export", "write mined claims (jsonl, csv), an Obsidian-style vault (md) or transcripts",
     _export_arguments),
    ("transcribe", "one-shot batch transcription of a folder of audio (no daemon)",
     _transcribe_arguments),
    ("analyze", "loudness, duration, silences and chunk plan of one audio file",
     _analyze_arguments),
    ("hw", "detected hardware and the capacities computed from it", _json_only),
    ("doctor", "check what a real run depends on: yt-dlp and its JavaScript runtime, PO-token "
               "plugin, cookies, data dir, database, Whisper models, CUDA libraries, LLM hosts; "
               "one line each with its fix (exit 1 if any fails)", _json_only),
    ("pause", "hold a stage: no new work starts (work in flight finishes); the daemon keeps the "
              "hold across restarts", _stage_argument),
    ("resume", "release a stage held by `pause` or paused by the download circuit breaker, at "
               "once", _stage_argument),
    ("web", "serve the web page (overview, plots, failures, each video's transcript and claims) "
            "without a daemon, read-only; the daemon serves it itself while it runs",
     _web_arguments),
    ("config", "show the effective configuration or check a file", _config_arguments),
    ("db", "database upkeep: integrity check and online backup (both safe while the daemon "
           "runs), schema migration, and copying a SQLite run into PostgreSQL", _db_arguments),
    ("completion", "print a shell completion script (bash: `source <(ytpiped completion "
                   "bash)`; zsh, fish: see README)", _completion_arguments),
]


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. download.max_attempts=3")
        flags[key.strip()] = value.strip()
    if args.data_dir:
        flags["data_dir"] = args.data_dir
    for key in ("bind", "port"):  # `ytpiped web --bind/--port`
        if getattr(args, f"web_{key}", None) is not None:
            flags[f"web.{key}"] = getattr(args, f"web_{key}")
    return flags


def load_settings(args: argparse.Namespace) -> cfg.Settings:
    """The effective settings; warnings (a stray YTPIPED_* variable) go to stderr, once."""
    # `run` checks the cookies file with the rest: a bad one would spend an attempt of
    # every video
    settings = cfg.from_environ(args.config, _flags(args), check_cookies=args.command == "run")
    for warning in settings.warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    return settings


def _prepare(args: argparse.Namespace, settings: cfg.Settings) -> None:
    """Before a command writes files or logs: one permission policy for all we create, and
    warnings on stderr (`status` does this only when it reads the database itself)."""
    from ytpiped import files, logs

    files.apply_umask(settings.daemon.umask)
    if args.command != "run":
        logs.setup(json=False, level=args.log_level or "warning")


# ------------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import daemon, logs
    from ytpiped.store import DatabaseCorrupt, corruption_named, db_path

    logs.setup(json=args.log_json or (True if os.environ.get("INVOCATION_ID") else None),
               level=args.log_level or "info", journal_stream=os.environ.get("JOURNAL_STREAM"))
    try:
        with corruption_named(db_path(settings.data_path)):
            return daemon.run(settings)
    except DatabaseCorrupt as exc:
        # exit 1 like any runtime failure; systemd's StartLimitBurst ends the restarts
        logs.get("ytpiped.daemon").error("database_corrupt", database=str(exc.path),
                                         error=exc.detail)
        raise


def _open_store(settings: cfg.Settings, *, readonly: bool) -> SyncDB | None:
    """The store `store.url` names (SQLite: DATA/ytpiped.db); None when `readonly` finds
    nothing to read yet."""
    from ytpiped.store import open_sync

    return open_sync(settings, readonly=readonly)


def cmd_add(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import ingest

    if not args.inputs:
        raise UsageError("add: give a file, '-' for stdin, or URLs/ids as arguments")
    if args.filter and not args.follow:
        raise UsageError("add: --filter applies to followed sources: add --follow")
    if args.follow:
        return _follow(args, settings)
    sources: list[tuple[str, Sequence[str]] | ingest.Source] = []
    loose: list[str] = []
    for arg in args.inputs:
        if arg == "-" or Path(arg).exists() or not ingest.looks_like_url(arg):
            sources.append(ingest.read_source(arg, timeout_s=settings.add.read_timeout_s))
        else:
            loose.append(arg)
    if loose:
        sources.append(("<arguments>", loose))
    targets, report = ingest.collect(sources)
    store = _open_store(settings, readonly=False)
    assert store is not None
    try:
        ingest.add(store, targets, report, time.time(), priority=args.priority)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(report.summary())
        for bad in report.invalid[:50]:  # the text may hold a terminal escape: shown escaped
            print(printable(f"  invalid: {bad.source}:{bad.line}: {bad.reason}: {bad.text}"))
        if len(report.invalid) > 50:
            print(f"  … and {len(report.invalid) - 50} more invalid lines (see --json)")
    return EXIT_OK


def _follow(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import sources

    filters = sources.parse_filters(args.filter)
    for url in args.inputs:
        sources.target_of(url)  # every URL checked before anything is written
    store = _open_store(settings, readonly=False)
    assert store is not None
    try:
        new, updated = sources.follow(store, args.inputs, filters, time.time())
    finally:
        store.close()
    if args.json:
        print(json.dumps({"followed": new, "updated": updated}))
    else:
        print(f"followed {new}, updated {updated} (checked every "
              f"{settings.sources.follow_interval_h:g} h by the daemon; `ytpiped follows`)")
    return EXIT_OK


def cmd_follows(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import sources

    store = _open_store(settings, readonly=True)
    found = [] if store is None else sources.listing(store)
    if store is not None:
        store.close()
    if args.json:
        print(json.dumps({"follows": [sources.to_json(f) for f in found]}))
        return EXIT_OK
    if not found:
        print("no followed sources (ytpiped add --follow URL)")
    now = time.time()
    for f in found:
        last = "never" if f.last_check_at is None else \
            f"{max(0.0, now - f.last_check_at) / 60:.0f} min ago"
        print(printable(f"{f.url}  {f.title or ''}".rstrip()))
        print(f"  last check {last}, checks {f.checks}, entries found {f.found}, "
              f"added {f.added}" + (f", filters {f.filters}" if f.filters else ""))
        if f.error:
            print(printable(f"  last error: {f.error}"))
    return EXIT_OK


def cmd_unfollow(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import sources

    store = _open_store(settings, readonly=False)
    assert store is not None
    try:
        was = sources.unfollow(store, args.url, time.time())
    finally:
        store.close()
    if not was:
        print(printable(f"{args.url} is not followed (ytpiped follows lists them)"),
              file=sys.stderr)
        return EXIT_USAGE
    print(printable(f"unfollowed {args.url}; its videos stay"))
    return EXIT_OK


def live_status(settings: cfg.Settings) -> tuple[int | None, dict[str, Any] | None]:
    """(pid of the daemon holding the data dir, its status over the socket): the fast path
    of `status`, standard library only. (None, None) when no daemon runs; (pid, None) when
    one holds the data dir but does not answer (yet)."""
    from ytpiped import control_client, lock

    pid = lock.lock_holder(settings.data_path)
    if pid is None:
        return None, None
    raw = control_client.get(settings.data_path)
    if raw is None:
        return pid, None
    live: dict[str, Any] = json.loads(raw)
    return pid, live


def stored_status(settings: cfg.Settings, pid: int | None) -> dict[str, Any]:
    """The status read from the database (no daemon answers); an empty one without it."""
    from ytpiped import status
    from ytpiped.store import SqliteDB, corruption_named, db_path

    with corruption_named(db_path(settings.data_path)):
        found = _open_store(settings, readonly=True)
        store: SyncDB = found or SqliteDB(Path(":memory:"), now=time.time())
        try:
            st = status.build(store, time.time(), pid)
        finally:
            store.close()
    st["database"] = found is not None
    return st


def status_dict(settings: cfg.Settings) -> dict[str, Any]:
    """The running daemon's status, else the database's."""
    pid, live = live_status(settings)
    return live if live is not None else stored_status(settings, pid)


def cmd_status(args: argparse.Namespace, settings: cfg.Settings) -> int:
    prepared = False
    while True:
        pid, st = live_status(settings)
        if st is None:
            if not prepared:  # the store, logging and the umask only when reading the db
                _prepare(args, settings)
                prepared = True
            st = stored_status(settings, pid)
        st.setdefault("data_dir", str(settings.data_path))
        if args.json:
            shown = st.get("hosts", []) if args.hosts else st
            print(json.dumps(shown, indent=None if args.watch else 2), flush=True)
        else:
            from ytpiped import status

            if args.watch:
                print("\033[2J\033[H", end="")
            print(status.format_hosts(st) if args.hosts else status.format_status(st),
                  flush=True)
        if not args.watch:
            return EXIT_OK
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return EXIT_OK


def cmd_retry(args: argparse.Namespace, settings: cfg.Settings) -> int:
    store = _open_store(settings, readonly=False)
    assert store is not None
    try:
        if args.skipped and (args.stage or args.kind):
            raise UsageError("retry --skipped: --stage and --kind select failed videos; a "
                             "skipped video has neither (drop them, or drop --skipped)")
        if args.kind is not None:
            kinds = store.failures_by_kind()
            if args.kind not in kinds:
                valid = ", ".join(f"{k} ({n})" for k, n in sorted(kinds.items()))
                raise UsageError(f"retry --kind {args.kind!r}: no failed video has that kind; "
                                 + (f"the kinds of the failed videos: {valid}" if valid else
                                    "no video has failed"))
        now = time.time()
        n = 0 if args.skipped else store.retry_failed(now, stage=args.stage, kind=args.kind,
                                                      ids=args.video_ids)
        skipped = store.retry_skipped(now, ids=args.video_ids) \
            if args.skipped or args.video_ids else 0
    finally:
        store.close()
    if args.json:
        print(json.dumps({"requeued": n, "skipped": skipped, "stage": args.stage,
                          "kind": args.kind, "video_ids": args.video_ids}))
    else:
        done = [] if args.skipped else [f"re-queued {n} failed video{'s' if n != 1 else ''}"]
        if skipped or args.skipped:
            done.append(f"queued {skipped} skipped video{'s' if skipped != 1 else ''} anyway "
                        "(filters bypassed)")
        print("; ".join(done))
    return EXIT_OK


def cmd_remine(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped.mining.stale import Stale, read_output, staleness
    from ytpiped.states import State

    store = _open_store(settings, readonly=False)
    assert store is not None
    not_done: list[dict[str, str | None]] = []
    n = 0
    try:
        done = [v.id for v in store.videos(State.DONE.value, limit=2**62)]
        if args.video_ids:
            wanted = set(args.video_ids)
            for vid in sorted(wanted - set(done)):
                row = store.get(vid)
                not_done.append({"id": vid, "state": None if row is None else row.state})
                print(printable(f"{vid}: {'not queued' if row is None else row.state} (only "
                                "done videos are mined again; `ytpiped retry` re-queues failed "
                                "ones)"), file=sys.stderr)
            done = [v for v in done if v in wanted]
        stale: dict[str, Stale] = {}
        for vid in done:
            found = staleness(read_output(settings.data_path, vid), settings.mine)
            if found is None and args.all:
                found = Stale("requested (--all)", windows=False)
            if found is not None:
                stale[vid] = found
        if not args.json:
            _print_stale(len(done), stale)
        if stale and not args.dry_run:
            n = store.remine({vid: s.reason for vid, s in stale.items()}, time.time())
    finally:
        store.close()
    if args.json:
        print(json.dumps({"done": len(done), "dry_run": args.dry_run,
                          "stale": [{"id": vid, "reason": s.reason, "windows": s.windows}
                                    for vid, s in stale.items()],
                          "not_done": not_done, "requeued": n}))
    elif stale and not args.dry_run:
        print(f"re-queued {n} video{'s' if n != 1 else ''} for mining")
    return EXIT_OK


def cmd_retranscribe(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import retranscribe as rt
    from ytpiped.states import State

    if not args.video_ids and not args.all:
        raise UsageError("retranscribe: name the videos (VIDEO_ID ...) or give --all")
    model = args.model or None
    if model and ("/" in model or model.startswith(("~", "."))) and \
            not Path(model).expanduser().is_dir():
        raise UsageError(f"retranscribe --model {model}: no such model folder (give a model "
                         "name such as large-v3, or the folder of a CTranslate2 model)")
    store = _open_store(settings, readonly=False)
    assert store is not None
    not_done: list[dict[str, str | None]] = []
    n = 0
    try:
        rows = store.videos(State.DONE.value, limit=2**62)
        if args.video_ids:
            wanted = set(args.video_ids)
            for vid in sorted(wanted - {r.id for r in rows}):
                row = store.get(vid)
                not_done.append({"id": vid, "state": None if row is None else row.state})
                print(printable(f"{vid}: {'not queued' if row is None else row.state} (only "
                                "done videos are transcribed again)"), file=sys.stderr)
            rows = [r for r in rows if r.id in wanted]
        plans = rt.plan(rows, settings.data_path)
        if not args.json:
            _print_retranscribe(len(rows), plans, model, args.dry_run)
        if plans and not args.dry_run:
            n = store.retranscribe({p.video_id: p.target for p in plans}, time.time(), model)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"done": len(rows), "dry_run": args.dry_run, "model": model,
                          "videos": [{"id": p.video_id, "download": p.download,
                                      "source": p.source} for p in plans],
                          "not_done": not_done, "requeued": n}))
    elif plans and not args.dry_run:
        print(f"re-queued {n} video{'s' if n != 1 else ''} for transcription")
    return EXIT_OK


def _print_retranscribe(done: int, plans: list[Any], model: str | None, dry: bool) -> None:
    again = sum(1 for p in plans if p.download)
    print(f"{done} done video{'s' if done != 1 else ''}: {len(plans)} to transcribe again "
          f"with {'model ' + model if model else 'the configured model'} "
          f"({len(plans) - again} from kept audio, {again} to download again)"
          + (" [dry run: nothing changed]" if dry else ""))
    for p in plans[:20]:
        how = "download again" if p.download else "audio kept"
        extra = ", had YouTube subtitles" if p.source == "youtube_subtitles" else ""
        print(printable(f"  {p.video_id}: {how}{extra}"))
    if len(plans) > 20:
        print(f"  … and {len(plans) - 20} more")


def _print_stale(done: int, stale: dict[str, Any]) -> None:
    windows = sum(1 for s in stale.values() if s.windows)
    print(f"{done} done video{'s' if done != 1 else ''}: {len(stale)} to mine again "
          f"({windows} with windows to mine, {len(stale) - windows} evaluation only)")
    for vid, s in list(stale.items())[:20]:  # reasons name models read from outputs
        print(printable(f"  {vid}: {s.reason}"))
    if len(stale) > 20:
        print(f"  … and {len(stale) - 20} more")


def cmd_config(args: argparse.Namespace, settings: cfg.Settings | None) -> int:
    if args.config_command == "check":
        path = Path(args.file) if args.file else cfg.config_path(args.config, os.environ)
        if path is None:
            user = cfg.user_config(os.environ)
            raise UsageError("config check: give a FILE (no --config or YTPIPED_CONFIG, and "
                             f"neither {user or '$XDG_CONFIG_HOME/ytpiped/ytpiped.toml'} nor "
                             f"{cfg.SYSTEM_CONFIG} exists)")
        cfg.load(path, os.environ, _flags(args), strict_env=True, check_cookies=True)
        print(f"{path}: ok")
        return EXIT_OK
    assert settings is not None
    if args.toml:
        print(cfg.render_effective(settings), end="")
        return EXIT_OK
    rows = cfg.effective(settings)
    if args.json:
        print(json.dumps({k: {"value": list(v) if isinstance(v, tuple) else v, "source": src}
                          for k, v, src in rows}, indent=2))
        return EXIT_OK
    width = max(len(k) for k, _, _ in rows)
    section = ""
    for key, value, src in rows:
        head = key.split(".")[0] if "." in key else ""
        if head != section:
            section = head
            print(f"\n[{section}]")
        kind = dict(cfg.all_keys())[key].metadata["kind"]
        shown = f'"{cfg.format_size(value)}"' if kind == "size" else cfg.to_toml_value(value)
        print(printable(f"{key:<{width}} = {shown:<28} # {src}"))
    return EXIT_OK


def cmd_hw(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import hardware
    from ytpiped.scheduling import capacity

    snap = hardware.snapshot(settings.transcribe.reserved_vram_mb)
    cap = capacity.compute(snap, settings.transcribe)
    view = capacity.gpu_slots_view(snap, settings.transcribe, cap, _live_gpu_slots(settings))
    if args.json:
        print(json.dumps({"hardware": hardware.snapshot_to_json(snap),
                          "capacity": capacity.capacity_to_json(cap),
                          "gpu_slots": view}, indent=2))
    else:
        print(printable_lines(capacity.describe(snap, cap, view)))
    return EXIT_OK


def _live_gpu_slots(settings: cfg.Settings) -> dict[str, Any] | None:
    """A running daemon's GPU slots (device -> active, ceiling, why), as `status` reads
    them (its socket, else what it published in the store); None when no daemon runs."""
    pid, st = live_status(settings)
    if pid is None:
        return None
    if st is None:
        st = stored_status(settings, pid)
    gpu = st.get("stages", {}).get("transcribe", {}).get("gpu")
    return dict(gpu) if isinstance(gpu, dict) else {}


def cmd_analyze(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import kinds
    from ytpiped.audio.analysis import BadAudio, NoAudio, analyze_file, format_analysis

    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    try:
        result = analyze_file(args.file, settings)
    except (BadAudio, NoAudio) as exc:
        kind = kinds.BAD_AUDIO if isinstance(exc, BadAudio) else kinds.NO_AUDIO
        if args.json:
            print(json.dumps({"error": kind, "message": str(exc)}))
        print(printable(f"error: {kind}: {exc}"), file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(result, indent=2) if args.json else format_analysis(result))
    return EXIT_OK


def _fetch_outputs(settings: cfg.Settings) -> None:
    """Hosts sharing a PostgreSQL store without shared files: write the finished videos'
    results made on other hosts into this data dir first (they are kept in the store)."""
    from ytpiped import outputs
    from ytpiped.store.blocking import BlockingStore

    if settings.store.shared_files:
        return
    store = _open_store(settings, readonly=True)
    if isinstance(store, BlockingStore):
        try:
            n = store.call(outputs.fetch_finished(store.store, settings.data_path))
        finally:
            store.close()
        if n:
            print(f"fetched {n} result file{'s' if n != 1 else ''} made on other hosts from "
                  "the store", file=sys.stderr)
    elif store is not None:
        store.close()


def cmd_export(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped.mining.export import export
    from ytpiped.search import parse_since

    _fetch_outputs(settings)
    since = parse_since(args.since) if args.since else None
    store = _open_store(settings, readonly=True)
    try:
        rows = {r.id: r for r in store.find_videos()} if store is not None else {}
    finally:
        if store is not None:
            store.close()
    report = export(settings.data_path, Path(args.out), args.format, rows=rows, since=since,
                    channel=args.channel, incremental=args.incremental,
                    transcript_format=args.transcript_format, merged=args.merged)
    if args.json:
        print(json.dumps(report.to_json()))
        return EXIT_OK
    what = (f"{report.videos} transcript{'s' if report.videos != 1 else ''}"
            if args.format == "transcripts" else
            f"{report.claims} claim{'s' if report.claims != 1 else ''} of {report.videos} "
            f"video{'s' if report.videos != 1 else ''}")
    unchanged = f", {report.unchanged} unchanged" if args.incremental else ""
    print(printable(f"exported {what} to {args.out} ({args.format}{unchanged}; "
                    f"{len(report.files)} file{'s' if len(report.files) != 1 else ''} "
                    "written)"))
    return EXIT_OK


def cmd_transcribe(args: argparse.Namespace, settings: cfg.Settings) -> int:
    import dataclasses

    from ytpiped import hardware
    from ytpiped.engines.base import ModelUnavailable
    from ytpiped.oneshot import configure

    audio_dir = Path(args.audio_dir)
    if not audio_dir.is_dir():
        raise UsageError(f"--audio-dir {args.audio_dir}: not a directory")
    # NVML is not probed for --device cpu unless --json reports the slots
    snap = None if args.device == "cpu" else hardware.snapshot(
        settings.transcribe.reserved_vram_mb)
    gpus = len(snap.gpus) if snap is not None else 0
    settings = configure(settings, device=args.device, workers=args.workers, model=args.model,
                         language=args.language, formats=args.formats, gpus=gpus)
    from ytpiped.engines.process import ProcessEngine
    from ytpiped.pipeline import build_engines

    engines = build_engines(settings)  # the GPU slots up to their ceiling: the climb starts
    for engine in engines:             # those it keeps active; the CPU slots load their
        if isinstance(engine, ProcessEngine) and engine.device_kind == "cpu":
            engine.spawn()             # models from now on, while the files are found
    from ytpiped.oneshot import summary, transcribe_directory

    try:
        results = transcribe_directory(audio_dir, Path(args.out), settings,
                                       progress=sys.stderr, recursive=args.recursive,
                                       engines=engines)
    except ModelUnavailable as exc:
        t = settings.transcribe
        models = sorted({t.model_gpu, t.model_cpu} if gpus else {t.model_cpu})
        raise UsageError(f"Whisper model {' / '.join(models)} not available: "
                         f"{str(exc).rstrip('.')}. Give --model with a model name (fetched "
                         "once when transcribe.allow_download is on and the network is "
                         "reachable) or the folder of a local CTranslate2 Whisper model"
                         ) from None
    if args.json:
        from ytpiped.scheduling import capacity

        done = [r for r in results if r.status == "done"]
        t = settings.transcribe
        cap = capacity.compute(snap or hardware.snapshot(t.reserved_vram_mb), t)
        ran = [e for e in engines if getattr(e, "calls", 0)]
        print(json.dumps({
            "transcribed": len(done),
            "skipped": sum(1 for r in results if r.status == "skipped"),
            "failed": sum(1 for r in results if r.status == "failed"),
            "audio_s": round(sum(r.duration_s for r in done), 3),
            "words": sum(r.words for r in done),
            "settings": {"device": args.device, "gpu_slots": t.gpu_slots,
                         "cpu_slots": t.cpu_slots, "model_gpu": t.model_gpu,
                         "model_cpu": t.model_cpu, "language": t.language,
                         "formats": list(t.output_formats),
                         # the slots that ran (the GPU's ceiling beside: how many
                         # active GPU slots it may climb to)
                         "slots": {"gpu": sum(1 for e in ran if e.device_kind == "gpu"),
                                   "gpu_ceiling": cap.total_gpu_slots,
                                   "cpu": sum(1 for e in ran if e.device_kind == "cpu"),
                                   "cpu_threads_per_slot": cap.cpu_threads_per_slot,
                                   "batch_size_gpu": t.batch_size,
                                   "batch_size_cpu": t.batch_size_cpu}},
            "files": [dataclasses.asdict(r) for r in results]}))
    else:
        print(printable_lines(summary(results)))  # file names and decoder errors, escaped
    return EXIT_OK if all(r.status != "failed" for r in results) else EXIT_FAILURE


def cmd_db(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped.store import db_path, is_postgres, upkeep

    if args.db_command not in ("check", "backup", "migrate", "copy"):
        raise UsageError("db: give a subcommand: `ytpiped db check`, `ytpiped db backup FILE`, "
                         "`ytpiped db migrate` or `ytpiped db copy --to URL`")
    if args.db_command == "migrate":
        return _db_migrate(args, settings)
    if args.db_command == "copy":
        return _db_copy(args, settings)
    if is_postgres(settings.store.url):
        raise UsageError(f"`ytpiped db {args.db_command}` works on the SQLite store only, and "
                         "store.url names a PostgreSQL database: use PostgreSQL's own tools "
                         "(pg_dump for a backup, pg_amcheck to check it)")
    path = db_path(settings.data_path)
    if not path.is_file():
        raise UsageError(f"{path}: no database (nothing added yet, or --data-dir / data_dir "
                         "points elsewhere)")
    if args.db_command == "backup":
        dest = Path(args.file)
        if dest.is_dir():
            raise UsageError(f"{dest}: is a directory; give the backup's file name")
        if dest.exists() and not args.force:
            raise UsageError(f"{dest} exists: give --force to replace it")
        if dest.exists() and dest.resolve() == path.resolve():
            raise UsageError(f"{dest} is the database itself; give another file name")
        made = upkeep.backup(path, dest)
        print(f"backed up {made.videos} video{'s' if made.videos != 1 else ''} from {path} "
              f"to {dest}")
        return EXIT_OK
    report = upkeep.check(path)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    elif report.ok:
        print(f"{path}: ok (schema version {report.schema_version}, {report.videos} videos)")
    else:
        print(f"{path}: damaged, {len(report.problems)} problem"
              f"{'s' if len(report.problems) != 1 else ''} found:")
        for problem in report.problems:
            print(f"  {problem}")
        print("Stop the daemon and restore a backup made with `ytpiped db backup` (README, "
              "Backups); a file that still opens may be partly recovered with sqlite3's "
              "`.recover`.")
    return EXIT_OK if report.ok else EXIT_FAILURE


def _db_migrate(args: argparse.Namespace, settings: cfg.Settings) -> int:
    import asyncio

    from ytpiped.clock import SystemClock
    from ytpiped.store import is_postgres, make_store
    from ytpiped.store.postgres import PostgresStore, redact
    from ytpiped.store.sqlite_store import SqliteStore

    store = make_store(settings, SystemClock())
    before, after = asyncio.run(_migrated(store))
    where = redact(store.url) if isinstance(store, PostgresStore) else \
        str(store.path if isinstance(store, SqliteStore) else "")
    if args.json:
        print(json.dumps({"store": where, "postgres": is_postgres(settings.store.url),
                          "from_version": before, "version": after}))
    elif before == after:
        print(f"{where}: schema version {after}, up to date")
    else:
        print(f"{where}: schema version {before} -> {after}")
    return EXIT_OK


async def _migrated(store: Any) -> tuple[int, int]:
    """(version before, version after) of opening `store` (opening migrates)."""
    from ytpiped.store import schema
    from ytpiped.store.pg_schema import SCHEMA_VERSION as PG_VERSION
    from ytpiped.store.postgres import PostgresStore, schema_version

    if isinstance(store, PostgresStore):
        before = await schema_version(store.url)
        await store.open()
        await store.close()
        return before, PG_VERSION
    from ytpiped.store.sqlite import sqlite_version

    before = sqlite_version(store.path)
    await store.open()
    await store.close()
    return before, schema.SCHEMA_VERSION


def _db_copy(args: argparse.Namespace, settings: cfg.Settings) -> int:
    import asyncio

    from ytpiped.errors import EXIT_LOCKED, DataDirLocked
    from ytpiped.lock import acquire_lock
    from ytpiped.store import db_path, is_postgres
    from ytpiped.store.copy import copy_sqlite_to_postgres

    if not is_postgres(args.to):
        raise UsageError("db copy --to: expected a postgresql:// URL of an empty database")
    path = db_path(settings.data_path)
    if not path.is_file():
        raise UsageError(f"{path}: no SQLite database to copy (--data-dir / data_dir points "
                         "elsewhere?)")
    try:
        lock = acquire_lock(settings.data_path)  # no daemon writes while we read
    except DataDirLocked as exc:
        print(printable_lines(f"error: {exc}"), file=sys.stderr)
        return EXIT_LOCKED
    try:
        import socket

        host = settings.daemon.host_id or socket.gethostname()
        report = asyncio.run(copy_sqlite_to_postgres(path, args.to, time.time(), host))
    finally:
        lock.close()
    if args.json:
        print(json.dumps(report.to_json()))
        return EXIT_OK
    print(f"copied {path} to {report.target}: " + ", ".join(
        f"{n} {table}" for table, n in report.rows.items()))
    print("next: set store.url to that URL (config file, or YTPIPED_STORE__URL) on every "
          "host, then start `ytpiped run`; the SQLite file is unchanged")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import doctor

    checks = doctor.run(settings)
    if args.json:
        print(json.dumps(doctor.to_json(checks), indent=2))
    else:
        print(printable_lines(doctor.format_checks(checks)))
    return EXIT_FAILURE if doctor.failed(checks) else EXIT_OK


def cmd_pause_resume(args: argparse.Namespace, settings: cfg.Settings) -> int:
    """Leave the request where the daemon's stage finds it (now, or when it starts)."""
    from ytpiped import lock, status

    stage, action, now = args.stage, args.command, time.time()
    store = _open_store(settings, readonly=False)
    assert store is not None
    try:
        before = store.get_state(f"request:{stage}")
        store.set_state(f"request:{stage}", {"action": action, "at": now}, now)
        last = status.merge_hosts(store.all_state("stage:"), set()).get(stage) or {}
    finally:
        store.close()
    breaker = last.get("breaker") or {}
    state = breaker.get("state", "closed")
    if before and isinstance(before[0], dict) and before[0].get("action") == "pause" and \
            float(before[0].get("at") or 0) > float(breaker.get("request_at") or 0):
        state = "held"  # a hold the daemon has not applied yet
    running = lock.lock_holder(settings.data_path) is not None
    when = ("the running daemon applies it within seconds" if running else
            "the daemon is not running: it applies this when it starts")
    if action == "pause":
        print(f"{stage}: held: no new video starts this stage (work in flight finishes); "
              f"`ytpiped resume {stage}` releases it; {when}")
    elif state == "closed":
        print(f"{stage}: was not paused; nothing to resume")
    else:
        why = "held by `ytpiped pause`" if state == "held" else (
            f"paused by the circuit breaker after {breaker.get('kind')} failures")
        print(printable(f"{stage}: resumed (it was {why}); {when}"))
    return EXIT_OK


def cmd_web(args: argparse.Namespace, settings: cfg.Settings) -> int:
    import asyncio

    from ytpiped.web.sources import serve_standalone

    def ready(url: str) -> None:
        print(f"ytpiped web page (read-only): {url}   (Ctrl-C stops it)", flush=True)

    try:
        asyncio.run(serve_standalone(settings, ready))
    except OSError as exc:
        raise ConfigError(f"keys 'web.bind'/'web.port': cannot listen on {settings.web.bind}:"
                          f"{settings.web.port}: {exc.strerror or exc}; choose another port "
                          "with --port (0: any free port)") from None
    return EXIT_OK


def _is_database_corrupt(exc: BaseException) -> bool:
    """A damaged SQLite file, or a PostgreSQL store that cannot be reached: runtime
    failures (exit 1) with a message that says what to do."""
    from ytpiped.store import DatabaseCorrupt, StoreUnavailable  # only when something failed
    from ytpiped.store.copy import CopyRefused

    return isinstance(exc, DatabaseCorrupt | StoreUnavailable | CopyRefused)


COMMANDS: dict[str, Callable[[argparse.Namespace, cfg.Settings], int]] = {
    "db": cmd_db,
    "doctor": cmd_doctor,
    "pause": cmd_pause_resume,
    "resume": cmd_pause_resume,
    "run": cmd_run,
    "add": cmd_add,
    "status": cmd_status,
    "follows": cmd_follows,
    "unfollow": cmd_unfollow,
    "retry": cmd_retry,
    "remine": cmd_remine,
    "retranscribe": cmd_retranscribe,
    "hw": cmd_hw,
    "export": cmd_export,
    "search": find.cmd_search,
    "reindex": find.cmd_reindex,
    "ls": find.cmd_ls,
    "show": find.cmd_show,
    "logs": find.cmd_logs,
    "transcribe": cmd_transcribe,
    "analyze": cmd_analyze,
    "web": cmd_web,
}


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ytpiped import completion

    print(completion.script(args.shell, parser, [k for k, _ in cfg.all_keys()]), end="")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "completion":  # needs no configuration
            return cmd_completion(args, _parser())
        if args.command == "config":
            if args.config_command not in ("show", "check"):
                parser.parse_args(["config", "--help"])
            settings = load_settings(args) if args.config_command == "show" else None
            return cmd_config(args, settings)
        settings = load_settings(args)
        if args.command != "status":  # status prepares only when it reads the database
            _prepare(args, settings)
        return COMMANDS[args.command](args, settings)
    except (ConfigError, UsageError) as exc:
        print(printable_lines(f"error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except YtpipedError as exc:
        if not _is_database_corrupt(exc):
            raise
        print(printable_lines(f"error: {exc}"), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
