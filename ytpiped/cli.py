"""Command line: parse, call, print, exit code. Thin by design (DESIGN.md §3).

Exit codes: 0 ok, 1 runtime failure (a damaged database too: it is data, not
configuration), 2 usage or configuration error, 3 another daemon already owns the data dir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ytpiped import __version__, files, kinds, logs
from ytpiped import config as cfg
from ytpiped.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ConfigError, UsageError
from ytpiped.states import STAGE_NAMES, State
from ytpiped.store import DatabaseCorrupt, SqliteDB, StoreNotReady, corruption_named, db_path
from ytpiped.text import printable, printable_lines

PAUSABLE = ("download",)  # stages `pause`/`resume` can hold

ENV_HELP = """environment:
  YTPIPED_CONFIG              config file (when --config is not given; else
                              /etc/ytpiped/ytpiped.toml if present)
  YTPIPED_<SECTION>__<KEY>    override any config key, e.g.
                              YTPIPED_DOWNLOAD__MAX_VIDEOS_PER_HOUR=100,
                              YTPIPED_DATA_DIR=/srv/ytpiped
precedence: defaults < config file < environment < --data-dir/--set flags"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ytpiped", formatter_class=_Formatter, epilog=ENV_HELP,
        description="Turn thousands of YouTube URLs into transcripts and mined knowledge: "
                    "a daemon that downloads, analyzes, transcribes, mines and evaluates, "
                    "persisting every step in SQLite.")
    p.add_argument("--version", action="version", version=f"ytpiped {__version__}")
    p.add_argument("--config", metavar="PATH", help="TOML config file", default=None)
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help="data directory (database, audio, outputs); default from config: "
                        "~/.local/share/ytpiped")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config key, e.g. --set download.max_attempts=3 "
                        "(repeatable)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="log level (default: info for run, warning for other commands)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=_Formatter,
                              epilog=ENV_HELP)

    r = cmd("run", "run the daemon in the foreground (what systemd starts)")
    r.add_argument("--log-json", action="store_true", default=None,
                   help="JSON log lines even on a terminal (default: JSON unless on a TTY)")

    a = cmd("add", "queue URLs / video ids / playlists / channels; duplicates are skipped")
    a.add_argument("inputs", nargs="*", metavar="FILE|-|URL",
                   help="files with one URL or id per line ('-' = stdin; blank lines and "
                        "# comments ignored; a pipe or FIFO silent for add.read_timeout_s is "
                        "an error), or URLs/ids as arguments")
    a.add_argument("--json", action="store_true", help="machine-readable report")

    s = cmd("status", "per-state counts, stage rates, ETA, failures and suggestions")
    s.add_argument("--json", action="store_true", help="print the status JSON")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument("--interval", type=float, default=2.0, help="refresh interval with --watch")

    rt = cmd("retry", "re-queue failed videos (all, or filtered by stage, kind or id)")
    rt.add_argument("video_ids", nargs="*", metavar="VIDEO_ID")
    rt.add_argument("--stage", choices=STAGE_NAMES, help="only videos that failed in this stage")
    rt.add_argument("--kind", help="only videos that failed with this error kind")

    rm = cmd("remine", "mine done videos again whose results a new prompt version or model "
                       "made stale (windows still current are kept)")
    rm.add_argument("video_ids", nargs="*", metavar="VIDEO_ID",
                    help="only these videos (default: every done video)")
    rm.add_argument("--all", action="store_true",
                    help="re-queue them even when nothing is stale")
    rm.add_argument("--dry-run", action="store_true", help="list what is stale; change nothing")

    e = cmd("export", "write mined claims and evaluations")
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--format", choices=["jsonl", "md"], default="jsonl")

    t = cmd("transcribe", "one-shot batch transcription of a folder of audio (no daemon)")
    t.add_argument("--audio-dir", required=True, metavar="DIR")
    t.add_argument("--out", required=True, metavar="DIR")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--workers", type=int, default=None, help="slots (default: from hardware)")
    t.add_argument("--model", default=None, help="model name or path (default: from config)")

    an = cmd("analyze", "loudness, duration, silences and chunk plan of one audio file")
    an.add_argument("file", metavar="FILE")
    an.add_argument("--json", action="store_true")

    h = cmd("hw", "detected hardware and the capacities computed from it")
    h.add_argument("--json", action="store_true")

    d = cmd("doctor", "check what a real run depends on: yt-dlp and its JavaScript runtime, "
                      "PO-token plugin, cookies, data dir, database, Whisper models, CUDA "
                      "libraries, LLM hosts; one line each with its fix (exit 1 if any fails)")
    d.add_argument("--json", action="store_true", help="machine-readable report")

    for name, what in (("pause", "hold a stage: no new work starts (work in flight "
                                 "finishes); the daemon keeps the hold across restarts"),
                       ("resume", "release a stage held by `pause` or paused by the "
                                  "download circuit breaker, at once")):
        pr = cmd(name, what)
        pr.add_argument("stage", choices=PAUSABLE, metavar="STAGE",
                        help=f"the stage ({', '.join(PAUSABLE)}; only the download stage "
                             "can be held in this version)")

    c = cmd("config", "show the effective configuration or check a file")
    csub = c.add_subparsers(dest="config_command", metavar="show|check")
    cs = csub.add_parser("show", help="effective configuration with the source of each value",
                         formatter_class=_Formatter)
    cs.add_argument("--json", action="store_true")
    cc = csub.add_parser("check", help="validate a config file with the YTPIPED_* environment "
                                       "and --set flags as `run` would use them (exit 2 if "
                                       "invalid; unknown YTPIPED_* variables are errors here)",
                         formatter_class=_Formatter)
    cc.add_argument("file", nargs="?", metavar="FILE",
                    help="file to check (default: the one --config/YTPIPED_CONFIG names)")

    d = cmd("db", "database upkeep: integrity check and online backup (both safe while the "
                  "daemon runs)")
    dsub = d.add_subparsers(dest="db_command", metavar="check|backup")
    dc = dsub.add_parser("check", formatter_class=_Formatter,
                         help="run SQLite's integrity_check on DATA/ytpiped.db (read-only); "
                              "exit 1 and list the problems if it is damaged")
    dc.add_argument("--json", action="store_true", help="machine-readable report")
    db = dsub.add_parser("backup", formatter_class=_Formatter,
                         help="copy DATA/ytpiped.db to FILE with SQLite's online backup API "
                              "(consistent while the daemon writes); restore: stop the daemon, "
                              "copy FILE to DATA/ytpiped.db, delete ytpiped.db-wal/-shm")
    db.add_argument("file", metavar="FILE", help="where the backup goes")
    db.add_argument("--force", action="store_true", help="replace FILE if it exists")
    return p


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. download.max_attempts=3")
        flags[key.strip()] = value.strip()
    if args.data_dir:
        flags["data_dir"] = args.data_dir
    return flags


def load_settings(args: argparse.Namespace) -> cfg.Settings:
    """The effective settings; warnings (a stray YTPIPED_* variable) go to stderr, once."""
    settings = cfg.from_environ(args.config, _flags(args))
    for warning in settings.warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    return settings


# ------------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import daemon

    cfg.check_cookies_file(settings)  # a bad file would spend an attempt of every video
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


def _open_store(settings: cfg.Settings, *, readonly: bool) -> SqliteDB | None:
    path = db_path(settings.data_path)
    if readonly and not path.exists():
        return None
    try:
        return SqliteDB(path, readonly=readonly, now=time.time())
    except StoreNotReady:
        return None


def cmd_add(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import ingest

    if not args.inputs:
        raise UsageError("add: give a file, '-' for stdin, or URLs/ids as arguments")
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
        ingest.add(store, targets, report, time.time())
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


def status_dict(settings: cfg.Settings) -> dict[str, Any]:
    from ytpiped import lock, status

    pid = lock.lock_holder(settings.data_path)
    if pid is not None:
        import asyncio

        from ytpiped import control

        raw = asyncio.run(control.fetch(settings.data_path))
        if raw is not None:
            live: dict[str, Any] = json.loads(raw)
            return live
    store = _open_store(settings, readonly=True)
    if store is None:
        empty = SqliteDB(Path(":memory:"), now=time.time())
        try:
            return status.build(empty, time.time(), pid)
        finally:
            empty.close()
    try:
        return status.build(store, time.time(), pid)
    finally:
        store.close()


def cmd_status(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped import status

    while True:
        with corruption_named(db_path(settings.data_path)):
            st = status_dict(settings)
        if args.json:
            print(json.dumps(st, indent=None if args.watch else 2), flush=True)
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(status.format_status(st), flush=True)
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
        n = store.retry_failed(time.time(), stage=args.stage, kind=args.kind,
                               ids=args.video_ids)
    finally:
        store.close()
    print(f"re-queued {n} failed video{'s' if n != 1 else ''}")
    return EXIT_OK


def cmd_remine(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped.mining.stale import Stale, read_output, staleness

    store = _open_store(settings, readonly=False)
    assert store is not None
    try:
        done = [v.id for v in store.videos(State.DONE.value, limit=2**62)]
        if args.video_ids:
            wanted = set(args.video_ids)
            for vid in sorted(wanted - set(done)):
                row = store.get(vid)
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
        windows = sum(1 for s in stale.values() if s.windows)
        print(f"{len(done)} done video{'s' if len(done) != 1 else ''}: {len(stale)} to mine "
              f"again ({windows} with windows to mine, {len(stale) - windows} evaluation only)")
        for vid, s in list(stale.items())[:20]:  # reasons name models read from outputs
            print(printable(f"  {vid}: {s.reason}"))
        if len(stale) > 20:
            print(f"  … and {len(stale) - 20} more")
        if args.dry_run or not stale:
            return EXIT_OK
        n = store.remine({vid: s.reason for vid, s in stale.items()}, time.time())
    finally:
        store.close()
    print(f"re-queued {n} video{'s' if n != 1 else ''} for mining")
    return EXIT_OK


def cmd_config(args: argparse.Namespace, settings: cfg.Settings | None) -> int:
    if args.config_command == "check":
        path = Path(args.file) if args.file else cfg.config_path(args.config, os.environ)
        if path is None:
            raise UsageError("config check: give a FILE (no --config, YTPIPED_CONFIG or "
                             f"{cfg.SYSTEM_CONFIG})")
        cfg.check_cookies_file(cfg.load(path, os.environ, _flags(args), strict_env=True))
        print(f"{path}: ok")
        return EXIT_OK
    assert settings is not None
    rows = cfg.effective(settings)
    if getattr(args, "json", False):
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
    if args.json:
        print(json.dumps({"hardware": hardware.snapshot_to_json(snap),
                          "capacity": capacity.capacity_to_json(cap)}, indent=2))
    else:
        print(capacity.describe(snap, cap))
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace, settings: cfg.Settings) -> int:
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


def cmd_export(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped.mining.export import export

    n = export(settings.data_path, Path(args.out), args.format)
    print(f"exported {n} claim{'s' if n != 1 else ''} to {args.out} ({args.format})")
    return EXIT_OK


def cmd_transcribe(args: argparse.Namespace, settings: cfg.Settings) -> int:
    import dataclasses

    from ytpiped.oneshot import summary, transcribe_directory

    audio_dir = Path(args.audio_dir)
    if not audio_dir.is_dir():
        raise UsageError(f"--audio-dir {args.audio_dir}: not a directory")
    t = settings.transcribe
    changes: dict[str, Any] = {}
    if args.model:
        changes["model_gpu"] = changes["model_cpu"] = args.model
    if args.device == "cpu":
        changes["gpu_slots"] = 0
    if args.workers is not None:
        changes["cpu_slots" if args.device == "cpu" else "gpu_slots"] = args.workers
    if args.device == "cuda":
        changes["cpu_slots"] = 0
    settings = dataclasses.replace(settings, transcribe=dataclasses.replace(t, **changes))
    results = transcribe_directory(audio_dir, Path(args.out), settings, progress=sys.stderr)
    print(printable_lines(summary(results)))  # file names and decoder errors, escaped
    return EXIT_OK if all(r.status != "failed" for r in results) else EXIT_FAILURE


def cmd_db(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ytpiped.store import upkeep

    if args.db_command not in ("check", "backup"):
        raise UsageError("db: give a subcommand: `ytpiped db check` or `ytpiped db backup FILE`")
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
    from ytpiped import lock

    stage, action, now = args.stage, args.command, time.time()
    store = _open_store(settings, readonly=False)
    assert store is not None
    try:
        before = store.get_state(f"request:{stage}")
        store.set_state(f"request:{stage}", {"action": action, "at": now}, now)
        last = store.get_state(f"stage:{stage}")
    finally:
        store.close()
    breaker = (last[0].get("breaker") if last and isinstance(last[0], dict) else None) or {}
    state = breaker.get("state", "closed")
    if before and isinstance(before[0], dict) and before[0].get("action") == "pause" and \
            float(before[0].get("at") or 0) > float(breaker.get("request_at") or 0):
        state = "held"  # a hold the daemon has not applied yet
    running = lock.lock_holder(settings.data_path) is not None
    when = ("the running daemon applies it within seconds" if running else
            "the daemon is not running: it applies this when it starts")
    if action == "pause":
        print(f"{stage}: held: no new download starts (one in flight finishes); "
              f"`ytpiped resume {stage}` releases it; {when}")
    elif state == "closed":
        print(f"{stage}: was not paused; nothing to resume")
    else:
        why = "held by `ytpiped pause`" if state == "held" else (
            f"paused by the circuit breaker after {breaker.get('kind')} failures")
        print(printable(f"{stage}: resumed (it was {why}); {when}"))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, cfg.Settings], int]] = {
    "db": cmd_db,
    "doctor": cmd_doctor,
    "pause": cmd_pause_resume,
    "resume": cmd_pause_resume,
    "run": cmd_run,
    "add": cmd_add,
    "status": cmd_status,
    "retry": cmd_retry,
    "remine": cmd_remine,
    "hw": cmd_hw,
    "export": cmd_export,
    "transcribe": cmd_transcribe,
    "analyze": cmd_analyze,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "config":
            if args.config_command not in ("show", "check"):
                parser.parse_args(["config", "--help"])
            settings = load_settings(args) if args.config_command == "show" else None
            return cmd_config(args, settings)
        settings = load_settings(args)
        files.apply_umask(settings.daemon.umask)  # one permission policy for all we create
        if args.command != "run":
            logs.setup(json=False, level=args.log_level or "warning")
        return COMMANDS[args.command](args, settings)
    except (ConfigError, UsageError) as exc:
        print(printable_lines(f"error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except DatabaseCorrupt as exc:
        print(printable_lines(f"error: {exc}"), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
