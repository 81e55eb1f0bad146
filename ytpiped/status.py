"""`ytpiped status`: the DESIGN.md §3 JSON, built from the database (and the stage status
the daemon publishes there), and its human table."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from ytpiped.states import STAGES, State
from ytpiped.text import printable

if TYPE_CHECKING:  # `status` with the daemon running formats its JSON without the store
    from ytpiped.store.blocking import StatusReader

HOUR = 3600.0
#: a host whose heartbeat is older than this is reported silent (when it does not say)
SILENT_S = 300.0
MIN_RATE_WINDOW_S = 60.0
PHASES = ("buffer_build", "steady", "catch_up", "full", "cooldown", "idle")
#: video states that still need a given stage
_ORDER = [s.value for s in State if s is not State.FAILED]


def _needs(stage: str, by_state: dict[str, int]) -> int:
    """Videos that have not finished `stage` yet (failed ones excluded)."""
    finished = STAGES[stage].finished.value
    cut = _ORDER.index(finished) if finished in _ORDER else len(_ORDER)
    return sum(by_state.get(s, 0) for s in _ORDER[:cut])


def build(store: StatusReader, now: float, daemon_pid: int | None) -> dict[str, Any]:
    by_state = store.counts()
    running = daemon_pid is not None
    hosts = hosts_of(store.all_state("host:"), now)
    published = merge_hosts(store.all_state("stage:"),
                            {h["host"] for h in hosts if h["silent"]})
    held = {k.split(":", 1)[1] for k, (v, _) in store.all_state("request:").items()
            if isinstance(v, dict) and v.get("action") == "pause"}
    daemon_state = store.get_state("daemon")
    started = daemon_state[0].get("started_at") if daemon_state and running else None
    # a daemon up for less than an hour: its rate is what it did since it started, scaled
    # to an hour (at least a minute counted), not the raw count, which would put the ETA
    # of a fresh run hours too late
    window = HOUR if not isinstance(started, int | float) else \
        max(MIN_RATE_WINDOW_S, min(HOUR, now - started))
    stages: dict[str, dict[str, Any]] = {}
    eta_parts: list[float] = []
    eta_unknown = False  # a running stage with work left that has no rate yet
    for name in STAGES:
        done_hour = store.event_count(name, "completed", now - HOUR)
        rate = round(store.event_count(name, "completed", now - window) * HOUR / window, 1) \
            if window < HOUR else float(done_hour)
        live = dict(published.get(name, {})) if running else {}
        entry: dict[str, Any] = {"rate_per_hour": rate, "completed_last_hour": done_hour,
                                 "in_progress": by_state[STAGES[name].running.value],
                                 "waiting": by_state[STAGES[name].ready.value]}
        entry.update(live)
        entry["paused"] = name in held  # `ytpiped pause STAGE`, until `ytpiped resume`
        stages[name] = entry
        remaining = _needs(name, by_state) if name != "download" else (
            by_state["queued"] + by_state["downloading"])
        alive = sum(by_state.values()) - by_state["failed"] - by_state["skipped"]
        entry["progress"] = round((alive - remaining) / alive, 4) if alive else 0.0
        if remaining and name in held:
            eta_unknown = True  # nothing moves past a held stage until it is resumed
        elif remaining and rate > 0:
            eta_parts.append(remaining / rate * HOUR)
        elif remaining and running and name in published:
            eta_unknown = True
    dl = stages["download"]
    dl.setdefault("phase", "idle")
    dl.setdefault("next_download_at", None)
    dl.setdefault("ytdlp_version", _ytdlp_version())
    dl.setdefault("js_runtime", None)  # known while a daemon runs (it runs the runtime)
    # the breaker as the last daemon left it: a pause outlives the daemon
    dl.setdefault("breaker", dict(published.get("download", {}).get("breaker") or
                                  {"state": "closed"}))
    tr = stages["transcribe"]
    tr.setdefault("gpu_slots", 0)
    tr.setdefault("cpu_slots", 0)
    tr.setdefault("rate_audio_s_per_s", 0.0)
    mi = stages["mine"]
    mi.setdefault("workers", 0)
    mi.setdefault("rate_windows_per_min", 0.0)
    mi.update(mining_eta(mi, _needs("mine", by_state), running))
    eta = None if not eta_parts or eta_unknown else max(eta_parts)
    pending = sum(n for s, n in by_state.items() if s not in ("done", "failed", "skipped"))
    if pending == 0:
        eta = 0.0 if by_state["done"] or by_state["failed"] else None
    elif not running:
        eta = None  # nothing moves until the daemon runs
    suggestions: list[Any] = []
    alerts: list[str] = []
    for entry in stages.values():
        suggestions.extend(entry.pop("suggestions", []) or [])
        alerts.extend(entry.pop("alerts", []) or [])
    alerts.extend(f"host {h['host']} silent for {_duration(h['silent_s'])}: its leases return "
                  "when they expire" + ("" if h.get("shared_files", True) else
                                        ", its downloaded audio is fetched again elsewhere")
                  for h in hosts if h["silent"])
    return {
        "videos": {"total": sum(by_state.values()), "by_state": by_state,
                   "by_kind": store.counts_by_kind()},
        "failures": {
            "by_kind": store.failures_by_kind(),
            "transient_by_kind": store.event_counts_by_kind("retry"),
            "cooldowns_by_kind": store.event_counts_by_kind("cooldown"),
            "recent": [{"id": r.id, "url": r.url, "title": r.title, "stage": r.failed_stage,
                        "kind": r.error_kind, "error": r.error}
                       for r in store.recent_failures(5)],
        },
        "transcripts": {"by_source": store.event_counts_by_kind("transcript_made")},
        "follows": _follows(store.all_state("follow:")),
        "stages": stages,
        "eta_seconds": eta,
        "suggestions": suggestions,
        "alerts": alerts,
        "daemon": {"running": running, "pid": daemon_pid, "started_at": started},
        "hosts": hosts,
        "generated_at": now,
    }


#: live figures that add up over the hosts of one store (capacity and throughput)
SUMMED = ("gpu_slots", "cpu_slots", "workers", "rate_audio_s_per_s", "rate_windows_per_min")


def merge_hosts(entries: dict[str, tuple[Any, float]], silent: set[str]
                ) -> dict[str, dict[str, Any]]:
    """Stage name -> its live status. Hosts sharing a store publish `stage:NAME@HOST`: the
    stage's entry is the newest host's, with slots and rates added up over the hosts that
    are not silent, and every host's own under `hosts`."""
    out: dict[str, dict[str, Any]] = {}
    per_host: dict[str, dict[str, tuple[dict[str, Any], float]]] = {}
    for key, (value, at) in entries.items():
        name, _, host = key.split(":", 1)[1].partition("@")
        v = dict(value) if isinstance(value, dict) else {}
        if host:
            per_host.setdefault(name, {})[host] = (v, at)
        else:
            out.setdefault(name, v)
    for name, hosts in per_host.items():
        merged = dict(max(hosts.values(), key=lambda e: e[1])[0])
        alive = [v for h, (v, _) in hosts.items() if h not in silent]
        for key in SUMMED:
            figures = [v[key] for v in alive if isinstance(v.get(key), int | float)]
            if figures:
                merged[key] = round(sum(figures), 2)
        for key in ("alerts", "suggestions"):  # what any live host has to say, once
            said = [x for v in alive for x in v.get(key) or []]
            if said:
                merged[key] = list({json.dumps(x, sort_keys=True): x for x in said}.values())
        merged["hosts"] = {h: v for h, (v, _) in sorted(hosts.items())}
        out[name] = merged
    return out


def _follows(entries: dict[str, tuple[Any, float]]) -> dict[str, int]:
    """How many sources are followed, and how many failed their last check."""
    live = [v for v, _ in entries.values() if isinstance(v, dict)]
    return {"followed": len(live), "failing": sum(1 for v in live if v.get("error"))}


def mining_eta(mine: dict[str, Any], backlog: int, running: bool) -> dict[str, Any]:
    """The mine stage's token figures and, from them, the projected time to mine the
    backlog: videos not mined yet x tokens per video (median of the last ones mined) /
    tokens per second (the servers' throughput while they had work). None while either is
    unknown or no daemon runs."""
    mine.pop("token_samples", None)  # the stage keeps them across restarts; not shown
    per_video = mine.get("tokens_per_video")
    per_s = mine.get("tokens_per_s")
    eta = None
    if running and isinstance(per_video, int | float) and isinstance(per_s, int | float) \
            and per_s > 0:
        eta = round(backlog * per_video / per_s, 1)
    return {"tokens_per_video": per_video if running else None,
            "tokens_per_s": per_s if running else None, "backlog_videos": backlog,
            "eta_seconds": eta}


def hosts_of(entries: dict[str, tuple[Any, float]], now: float) -> list[dict[str, Any]]:
    """The hosts sharing a PostgreSQL store, from their heartbeats (`host:HOST` entries):
    who, last heartbeat, silent or not, and what runs there. Empty with SQLite."""
    out = []
    for key, (value, at) in sorted(entries.items()):
        v = value if isinstance(value, dict) else {}
        silent_s = max(0.0, now - at)
        out.append({"host": key.split(":", 1)[1], "pid": v.get("pid"),
                    "started_at": v.get("started_at"), "last_heartbeat": at,
                    "silent_s": round(silent_s, 1),
                    "silent": silent_s > float(v.get("silent_after_s") or SILENT_S),
                    "shared_files": bool(v.get("shared_files", True)),
                    "stages": v.get("stages") or {}})
    return out


def format_hosts(st: dict[str, Any]) -> str:
    """`status --hosts`: one line per host sharing the store."""
    hosts = st.get("hosts") or []
    if not hosts:
        return "no hosts have reported (store.url is SQLite, or no daemon ran on PostgreSQL)"
    lines = [f"{'host':<24}{'pid':>8}  {'heartbeat':<12}{'state':<8}running (slots) per stage"]
    for h in hosts:
        stages = ", ".join(f"{name} {s.get('running', 0)}/{s.get('slots', 0)}"
                           for name, s in h["stages"].items())
        lines.append(f"{clip(str(h['host']), 23):<24}{h['pid'] or '-':>8}  "
                     f"{_duration(h['silent_s']) + ' ago':<12}"
                     f"{'SILENT' if h['silent'] else 'ok':<8}{stages or '-'}")
    return "\n".join(printable(line) for line in lines)


def _ytdlp_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("yt-dlp")
    except metadata.PackageNotFoundError:
        return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s"


def _count(n: float) -> str:
    """12345 -> "12.3k"; 2500000 -> "2.5M"."""
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    delta = ts - now
    clock = dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")
    return f"{clock} (in {_duration(delta)})" if delta > 0 else f"{clock} (now)"


def clip(text: str, width: int) -> str:
    """`text` on one line, control characters escaped, at most `width` characters, "…"
    where it was cut."""
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def _bar(n: int, total: int, width: int = 24) -> str:
    filled = 0 if total == 0 else round(width * n / total)
    return "█" * filled + "·" * (width - filled)


def gpu_slot_lines(gpu: Any) -> list[str]:
    """Per GPU of a running daemon: active slots of the VRAM ceiling, and why (the last
    step of the throughput climb, or the out-of-memory drop)."""
    if not isinstance(gpu, dict):
        return []
    return [f"  {dev}: {c.get('active')} of {c.get('ceiling')} GPU slots active — "
            f"{c.get('why') or 'no reason given'}"
            for dev, c in sorted(gpu.items()) if isinstance(c, dict)]


def format_status(st: dict[str, Any]) -> str:
    now = float(st.get("generated_at") or 0.0)
    v = st["videos"]
    total = v["total"]
    lines = []
    d = st["daemon"]
    state = f"running (pid {d['pid']})" if d["running"] else "not running"
    if st.get("data_dir"):
        lines.append(f"data: {st['data_dir']}" + (
            "" if st.get("database", True) else
            "  (no database there: nothing was added to this data dir; check --data-dir or "
            "data_dir, or start with `ytpiped add URL`)"))
    lines.append(f"daemon: {state}    videos: {total}    ETA: {_duration(st['eta_seconds'])}")
    if st.get("hosts"):
        lines.append("hosts: " + ", ".join(
            f"{h['host']} ({'SILENT ' + _duration(h['silent_s']) if h['silent'] else 'ok'})"
            for h in st["hosts"]))
    for alert in st.get("alerts", []):
        lines.append(f"ALERT: {alert}")
    dev = st.get("devices")
    if dev:
        gpus = "".join(f", GPU {g['index']} {g['utilization_pct'] or 0:.0f}% "
                       f"({g['memory_used_mb']}/{g['memory_total_mb']} MB)" for g in dev["gpus"])
        lines.append(f"devices: CPU {dev['cpu_percent']:.0f}%, RAM {dev['ram_percent']:.0f}%"
                     + gpus)
    lines.append("")
    shown = {state: n for state, n in v["by_state"].items() if n}  # zero states hidden
    if shown:
        lines.append(f"{'state':<14}{'videos':>9}  {'':<24}")
        lines += [f"{state:<14}{n:>9}  {_bar(n, total)}" for state, n in shown.items()]
    else:
        lines.append("no videos yet")
    lines.append("")
    # rates measured while work ran; with nothing running they are history, not live
    live = d["running"] and any(s.get("in_progress") for s in st["stages"].values())
    lines.append(f"{'stage':<12}{'waiting':>9}{'running':>9}{'done/h':>9}  "
                 f"{'progress':<18}detail")
    for name, s in st["stages"].items():
        detail = ""
        if name == "download":
            detail = f"phase {s['phase']}, next {_when(s.get('next_download_at'), now)}"
        elif name == "transcribe" and d["running"]:
            detail = (f"slots gpu {s['gpu_slots']} cpu {s['cpu_slots']}, "
                      f"{s['rate_audio_s_per_s']:.1f} audio s/s"
                      + ("" if live else " (learned, not live: nothing running)"))
        elif name == "mine" and d["running"]:
            detail = f"workers {s['workers']}, {s['rate_windows_per_min']:.1f} windows/min"
            if s.get("tokens_per_s"):
                detail += f", {s['tokens_per_s']:.0f} tok/s"
            if s.get("tokens_per_video"):
                detail += f", {_count(s['tokens_per_video'])} tok/video"
            if s.get("eta_seconds") is not None and s.get("backlog_videos"):
                detail += f", mining ETA {_duration(s['eta_seconds'])}"
            detail += "" if live else " (learned, not live: nothing running)"
        if s.get("paused"):
            detail = f"PAUSED (ytpiped resume {name})" + (f"; {detail}" if detail else "")
        frac = float(s.get("progress", 0.0))
        bar = _bar(round(frac * 1000), 1000, 10)
        lines.append(f"{name:<12}{s['waiting']:>9}{s['in_progress']:>9}"
                     f"{s['rate_per_hour']:>9.0f}  {bar} {frac:>5.0%}  {detail}")
        if name == "transcribe" and d["running"]:
            lines += gpu_slot_lines(s.get("gpu"))
    sources = st.get("transcripts", {}).get("by_source") or {}
    if sources:
        lines.append("transcripts by source: " + ", ".join(
            f"{k} {n}" for k, n in sorted(sources.items())))
    follows = st.get("follows") or {}
    if follows.get("followed"):
        lines.append(f"followed sources: {follows['followed']}"
                     + (f", {follows['failing']} failing (ytpiped follows)"
                        if follows.get("failing") else ""))
    if not live:
        lines.append("done/h: completed in the last hour (history, not live: "
                     + ("no work is running)" if d["running"] else "the daemon is not running)"))
    f = st["failures"]
    if f["by_kind"]:
        lines.append("")
        lines.append("failed by kind: " + ", ".join(f"{k} {n}" for k, n in
                                                    sorted(f["by_kind"].items())))
        for r in f["recent"]:
            name = r.get("title") or (r.get("url") if r["id"][:4] == "url-" else None)
            lines.append(f"  {r['id']} " + (f"{clip(str(name), 60)} " if name else "")
                         + f"[{r['stage']}/{r['kind']}] {clip(r['error'] or '', 100)}")
        kinds = sorted(f["by_kind"])
        lines.append(f"  retry: ytpiped retry --kind KIND ({', '.join(kinds)}), or ytpiped "
                     "retry VIDEO_ID; ytpiped ls --failed lists them all")
    if f.get("cooldowns_by_kind"):
        lines.append("cooldowns so far: " + ", ".join(
            f"{k} {n}" for k, n in sorted(f["cooldowns_by_kind"].items())))
    if st["suggestions"]:
        lines.append("")
        lines.append("suggestions:")
        for s in st["suggestions"]:
            lines.append(f"  - {s if isinstance(s, str) else s.get('text', s)}")
    # titles, URLs, errors, alerts and suggestions carry remote text: no line may hold a
    # control character (a terminal escape, or a newline that forges a line)
    return "\n".join(printable(line) for line in lines)
