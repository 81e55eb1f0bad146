"""The web page's HTML, rendered on the server from plain data (a status dict, store rows,
the transcript and mining files). Every value from outside (titles, URLs, errors, LLM
text) goes through `h` (escaped); links are only made of http(s) URLs."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from ytpiped.states import STAGES
from ytpiped.store.model import VideoRow
from ytpiped.web import plots
from ytpiped.web.history import Point, series

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
NAV = (("/", "overview"), ("/videos", "videos"), ("/failures", "failures"))
DESCRIPTION_OPEN_CHARS = 400  # a longer description (or one of more lines) starts collapsed
DESCRIPTION_OPEN_LINES = 6
SUMMARY_CHARS = 120  # of a collapsed description, its first line up to this many characters


def h(value: Any) -> str:
    return escape("" if value is None else str(value))


def when(ts: Any) -> str:
    """A <time> the script shows in the reader's time zone (UTC without it)."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "-"
    iso = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'<time datetime="{iso}">{iso.replace("T", " ")}</time>'


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "unknown"
    s = int(seconds)
    d, s = divmod(s, 86400)
    hrs, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {hrs}h" if d else f"{hrs}h {m:02d}m" if hrs else f"{m}m {s:02d}s"


def stamp(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def safe_url(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None


def time_link(row: VideoRow, seconds: float) -> str | None:
    """The video at `seconds`: YouTube's watch URL with `&t=Ns`, any other URL with the
    media fragment `#t=N` (a browser starts a media file there)."""
    t = max(0, int(seconds))
    if row.kind == "video" and YOUTUBE_ID.fullmatch(row.id):
        return f"https://www.youtube.com/watch?v={row.id}&t={t}s"
    url = safe_url(row.url)
    return f"{url.split('#')[0]}#t={t}" if url else None


def video_href(video_id: str) -> str:
    return "/video/" + quote(video_id, safe="")


def layout(title: str, body: str, *, active: str = "", search: bool = False,
           mode: str = "", refresh_s: float = 0.0) -> str:
    nav = "".join(f'<a href="{href}"{" class=on" if href == active else ""}>{name}</a>'
                  for href, name in NAV)
    if search:
        nav += ('<form class="search" action="/search" method="get"><input name="q" '
                'type="search" placeholder="search videos, claims and transcripts" '
                'aria-label="search"></form>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{h(title)} · ytpiped</title><link rel="stylesheet" href="/static/app.css">'
            f'<script src="/static/app.js" defer></script></head>'
            f'<body data-refresh="{refresh_s:g}"><header><b>ytpiped</b><nav>{nav}</nav>'
            f'<span class="mode">{h(mode)}</span></header><main>{body}</main></body></html>')


def action(path: str, label: str, csrf: str, fields: Mapping[str, str | None],
           confirm: str) -> str:
    hidden = "".join(f'<input type="hidden" name="{h(k)}" value="{h(v)}">'
                     for k, v in fields.items() if v is not None)
    return (f'<form class="action" method="post" action="{h(path)}" data-confirm="{h(confirm)}">'
            f'<input type="hidden" name="csrf" value="{h(csrf)}">{hidden}'
            f'<button type="submit">{h(label)}</button></form>')


# ------------------------------------------------------------------------ overview


def waiting_for(name: str, s: Mapping[str, Any], running: bool) -> str:
    """What a stage waits for, in words."""
    if s.get("paused"):
        return f"held by `ytpiped pause {name}`"
    breaker = s.get("breaker") or {}
    if breaker.get("state", "closed") != "closed":
        return f"circuit breaker {breaker.get('state')} after {breaker.get('kind')} failures"
    if s.get("cooldown_until"):
        return f"{s.get('cooldown_kind') or 'cooldown'} until {when(s['cooldown_until'])}"
    if s.get("llm") == "cooldown":
        return "the LLM server (down or busy)"
    if not s.get("waiting") and not s.get("in_progress") and float(s.get("progress") or 0) >= 1:
        return "nothing: every video is through"
    if not running:
        return "the daemon (not running)"
    if s.get("waiting") and not s.get("in_progress"):
        return "a free slot"
    if not s.get("waiting") and not s.get("in_progress"):
        return "work from the stage before"
    if name == "download" and s.get("phase") in ("full", "cooldown"):
        return f"phase {s['phase']}"
    return "nothing (working)"


def overview(st: Mapping[str, Any], points: Sequence[Point], csrf: str | None) -> str:
    v = st["videos"]
    total = v["total"] or 0
    d = st["daemon"]
    running = bool(d.get("running"))
    daemon = f"running (pid {h(d.get('pid'))})" if running else "not running"
    out = ['<section class="summary">',
           f'<span>daemon: <b id="daemon">{daemon}</b></span>',
           f'<span>videos: <b id="total">{total}</b></span>',
           f'<span>ETA: <b id="eta">{h(duration(st.get("eta_seconds")))}</b></span>',
           f'<span>as of {when(st.get("generated_at"))}</span></section>']
    alerts = st.get("alerts") or []
    if alerts:
        out.append('<ul class="alerts">' + "".join(f'<li class="alert">ALERT: {h(a)}</li>'
                                                   for a in alerts) + "</ul>")
    out.append('<div class="cols"><section><h2>Videos per state</h2><table id="states">')
    for state, n in v["by_state"].items():
        pct = 0 if not total else round(100 * n / total)
        out.append(f'<tr><td><a href="/videos?state={h(state)}">{h(state)}</a></td>'
                   f'<td class="n" data-count="{h(state)}">{n}</td><td class="bar">'
                   f'<meter min="0" max="100" value="{pct}"></meter></td></tr>')
    out.append("</table></section>")
    out.append(_stages(st, running, csrf))
    out.append("</div>")
    out.append(_devices(st))
    out.append(_hosts(st))
    lines = series([*points])
    out.append('<section class="plots"><h2>History</h2>')
    out.append(plots.line_plot(lines["finished"], "videos finished in the last hour, per stage",
                               plot_id="plot-finished"))
    out.append(plots.line_plot(lines["backlog"], "backlog: videos per state",
                               plot_id="plot-backlog"))
    out.append(plots.line_plot(lines["busy"], "transcription slots busy (fraction)",
                               plot_id="plot-busy"))
    out.append(plots.line_plot(lines["tokens"], "LLM tokens per second", plot_id="plot-tokens"))
    out.append("</section>")
    sugg = st.get("suggestions") or []
    if sugg:
        out.append("<section><h2>Suggestions</h2><ul>" + "".join(
            f"<li>{h(s if isinstance(s, str) else s.get('text', s))}</li>" for s in sugg) +
            "</ul></section>")
    return "".join(out)


def _stages(st: Mapping[str, Any], running: bool, csrf: str | None) -> str:
    out = ['<section><h2>Stages</h2><table id="stages"><tr><th>stage</th><th>waiting</th>'
           '<th>running</th><th>done/h</th><th>progress</th><th>waiting for</th>'
           f'{"<th></th>" if csrf else ""}</tr>']
    for name, s in (st.get("stages") or {}).items():
        if name not in STAGES:
            continue
        act = ""
        if csrf:
            act = "<td>" + (action("/actions/resume", "resume", csrf, {"stage": name},
                                   f"resume {name}?") if s.get("paused") else
                            action("/actions/pause", "pause", csrf, {"stage": name},
                                   f"hold {name}? work in flight finishes")) + "</td>"
        out.append(f'<tr data-stage="{h(name)}"><td>{h(name)}</td><td class="n">'
                   f'{h(s.get("waiting"))}</td><td class="n">{h(s.get("in_progress"))}</td>'
                   f'<td class="n">{float(s.get("rate_per_hour") or 0):.0f}</td>'
                   f'<td>{float(s.get("progress") or 0):.0%}</td>'
                   f'<td>{waiting_for(name, s, running)}</td>{act}</tr>')
    out.append("</table>")
    stages = st.get("stages") or {}
    dl, tr, mi = (stages.get(k) or {} for k in ("download", "transcribe", "mine"))
    out.append('<dl class="facts">'
               f'<dt>download phase</dt><dd id="phase">{h(dl.get("phase"))}</dd>'
               f'<dt>next download</dt><dd>{when(dl.get("next_download_at"))}</dd>'
               f'<dt>transcription slots</dt><dd>GPU {h(tr.get("gpu_slots"))} '
               f'({_pct(tr.get("busy_fraction_gpu"))} busy), CPU {h(tr.get("cpu_slots"))} '
               f'({_pct(tr.get("busy_fraction_cpu"))} busy), '
               f'{float(tr.get("rate_audio_s_per_s") or 0):.1f} audio s/s</dd>'
               f'<dt>LLM</dt><dd>{h(mi.get("workers"))} workers, '
               f'{float(mi.get("rate_windows_per_min") or 0):.1f} windows/min, '
               f'<span id="tokens">{float(mi.get("tokens_per_s") or 0):.1f}</span> '
               f'tokens/s</dd></dl></section>')
    return "".join(out)


def _hosts(st: Mapping[str, Any]) -> str:
    """The hosts sharing a PostgreSQL store (daemon.host_id), as `status --hosts` lists
    them; nothing on one machine."""
    hosts = st.get("hosts") or []
    if not hosts:
        return ""
    out = ['<section><h2>Hosts</h2><table id="hosts"><tr><th>host</th><th>pid</th>'
           '<th>heartbeat</th><th>state</th><th>running (slots) per stage</th></tr>']
    for x in hosts:
        stages = ", ".join(f"{n} {s.get('running', 0)}/{s.get('slots', 0)}"
                           for n, s in (x.get("stages") or {}).items())
        out.append(f'<tr data-host="{h(x.get("host"))}"><td>{h(x.get("host"))}</td>'
                   f'<td class="n">{h(x.get("pid"))}</td>'
                   f'<td>{h(duration(x.get("silent_s")))} ago</td>'
                   f'<td>{"SILENT" if x.get("silent") else "ok"}</td><td>{h(stages)}</td></tr>')
    out.append("</table></section>")
    return "".join(out)


def _pct(v: Any) -> str:
    return f"{float(v):.0%}" if isinstance(v, int | float) else "-"


def _devices(st: Mapping[str, Any]) -> str:
    dev = st.get("devices")
    if not dev:
        return ""
    gpus = "".join(f", GPU {h(g.get('index'))} {h(g.get('name'))} "
                   f"{float(g.get('utilization_pct') or 0):.0f}% "
                   f"({h(g.get('memory_used_mb'))}/{h(g.get('memory_total_mb'))} MB)"
                   for g in dev.get("gpus") or [])
    return (f'<p class="devices">devices: CPU {float(dev.get("cpu_percent") or 0):.0f}%, '
            f'RAM {float(dev.get("ram_percent") or 0):.0f}%{gpus}</p>')


# ------------------------------------------------------------------------ failures


def failure_groups(rows: Iterable[VideoRow], examples: int = 5) -> list[dict[str, Any]]:
    """Failed videos grouped by (stage, kind), biggest group first, with a few examples."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r.failed_stage or "?", r.error_kind or "error")
        g = groups.setdefault(key, {"stage": key[0], "kind": key[1], "count": 0,
                                    "examples": []})
        g["count"] += 1
        if len(g["examples"]) < examples:
            g["examples"].append({"id": r.id, "title": r.title, "url": r.url,
                                  "error": r.error, "at": r.updated_at})
    return sorted(groups.values(), key=lambda g: (-g["count"], g["stage"], g["kind"]))


def failures(groups: Sequence[Mapping[str, Any]], csrf: str | None) -> str:
    if not groups:
        return "<h1>Failures</h1><p>No failed videos.</p>"
    out = ["<h1>Failures</h1>"]
    if csrf:
        out.append(action("/actions/retry", "retry every failed video", csrf, {},
                          "re-queue every failed video?"))
    for g in groups:
        out.append(f'<section class="group" data-stage="{h(g["stage"])}" '
                   f'data-kind="{h(g["kind"])}"><h2>{h(g["stage"])} / {h(g["kind"])} '
                   f'<span class="count">{g["count"]}</span></h2>')
        if csrf:
            out.append(action("/actions/retry", f"retry these {g['count']}", csrf,
                              {"stage": g["stage"], "kind": g["kind"]},
                              f"re-queue {g['count']} videos that failed in {g['stage']} as "
                              f"{g['kind']}?"))
        out.append("<ul>" + "".join(
            f'<li><a href="{video_href(e["id"])}">{h(e["title"] or e["id"])}</a> '
            f'{when(e["at"])}<br><code>{h(e["error"])}</code></li>' for e in g["examples"]))
        more = g["count"] - len(g["examples"])
        out.append(f"<li>… and {more} more (<code>ytpiped retry --stage {h(g['stage'])} "
                   f"--kind {h(g['kind'])}</code>)</li>" if more > 0 else "")
        out.append("</ul></section>")
    return "".join(out)


# ------------------------------------------------------------------------ videos


def video_list(rows: Sequence[VideoRow], state: str | None, limit: int) -> str:
    title = f"Videos ({h(state)})" if state else "Videos"
    out = [f"<h1>{title}</h1><table id='videos'><tr><th>video</th><th>state</th>"
           "<th>duration</th><th>updated</th></tr>"]
    for r in rows:
        out.append(f'<tr><td><a href="{video_href(r.id)}">{h(r.title or r.id)}</a></td>'
                   f'<td>{h(r.state)}</td><td>{h(duration(r.duration_s))}</td>'
                   f'<td>{when(r.updated_at)}</td></tr>')
    out.append("</table>")
    if len(rows) >= limit:
        out.append(f"<p>the first {limit} shown</p>")
    return "".join(out)


def video(row: VideoRow, events: Sequence[Sequence[Any]], transcript: Mapping[str, Any] | None,
          mining: Mapping[str, Any] | None) -> str:
    url = safe_url(row.url)
    link = f'<a href="{h(url)}" rel="noreferrer">{h(url)}</a>' if url else h(row.url)
    out = [f"<h1>{h(row.title or row.id)}</h1><dl class='facts'>",
           f"<dt>id</dt><dd><code>{h(row.id)}</code></dd>",
           f"<dt>link</dt><dd>{link}</dd>",
           f"<dt>channel</dt><dd>{h(row.channel or '-')}</dd>",
           f"<dt>uploaded</dt><dd>{h(row.upload_date or '-')}</dd>",
           f"<dt>duration</dt><dd>{h(duration(row.duration_s))}</dd>",
           f"<dt>state</dt><dd id='state'>{h(row.state)}</dd>",
           f"<dt>attempts</dt><dd>{row.attempts}</dd>"]
    if row.state == "failed":
        out.append(f"<dt>failed</dt><dd>{h(row.failed_stage)} / {h(row.error_kind)}: "
                   f"<code>{h(row.error)}</code></dd>")
    skipped = (row.info or {}).get("skipped")
    if row.state == "skipped" and skipped:
        out.append(f"<dt>skipped</dt><dd>{h(skipped)}</dd>")
    meta = (row.info or {}).get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    if meta.get("language"):
        out.append(f"<dt>language</dt><dd>{h(meta['language'])}</dd>")
    out.append("</dl>")
    out.append(about(row, meta))
    out.append("<h2>History</h2><table id='history'><tr><th>when</th><th>stage</th>"
               "<th>event</th><th>kind</th><th>message</th></tr>")
    for at, stage, event, kind, message in events:
        out.append(f"<tr><td>{when(at)}</td><td>{h(stage)}</td><td>{h(event)}</td>"
                   f"<td>{h(kind)}</td><td>{h(message)}</td></tr>")
    out.append("</table>")
    if mining:
        out.append(_mining(row, mining))
    out.append("<h2>Transcript</h2>")
    segments = (transcript or {}).get("segments") or []
    if not segments:
        out.append("<p>no transcript yet</p>")
    else:
        out.append('<div id="transcript">')
        for seg in segments:
            out.append(f"<p>{_time_anchor(row, seg.get('start'))} {h(seg.get('text'))}</p>")
        out.append("</div>")
    return "".join(out)


def _time_anchor(row: VideoRow, start: Any) -> str:
    """A moment of the video: a link to it where the video has such links, else the time."""
    at_s = float(start or 0)
    at = time_link(row, at_s)
    return f'<a class="t" href="{h(at)}" rel="noreferrer">{stamp(at_s)}</a>' if at \
        else f'<span class="t">{stamp(at_s)}</span>'


def about(row: VideoRow, meta: Mapping[str, Any]) -> str:
    """The stored metadata's description (collapsed when long), tags and chapters (each a
    link to its moment in the video); "" when the extraction had none of them."""
    out: list[str] = []
    text = str(meta.get("description") or "").strip()
    if text:
        body = f"<div class='description'>{h(text)}</div>"
        long = len(text) > DESCRIPTION_OPEN_CHARS or text.count("\n") >= DESCRIPTION_OPEN_LINES
        out.append("<h2>Description</h2>" + (
            f"<details id='description'><summary>{h(text[:SUMMARY_CHARS].split(chr(10))[0])}"
            f"…</summary>{body}</details>" if long else f"<div id='description'>{body}</div>"))
    tags = [str(t) for t in meta.get("tags") or [] if str(t).strip()]
    if tags:
        out.append("<h2>Tags</h2><ul id='tags' class='tags'>"
                   + "".join(f"<li>{h(t)}</li>" for t in tags) + "</ul>")
    chapters = [c for c in meta.get("chapters") or [] if isinstance(c, Mapping)]
    if chapters:
        out.append("<h2>Chapters</h2><ol id='chapters'>")
        for c in chapters:
            out.append(f"<li>{_time_anchor(row, c.get('start'))} {h(c.get('title') or '')}</li>")
        out.append("</ol>")
    return "".join(out)


def _mining(row: VideoRow, doc: Mapping[str, Any]) -> str:
    evaluation = doc.get("evaluation") or {}
    out = []
    summary = evaluation.get("summary") or doc.get("summary")
    if summary:
        out.append(f"<h2>Summary</h2><p class='summary'>{h(summary)}</p>")
    prov = doc.get("provenance") or {}
    if evaluation:
        out.append(f"<p class='eval'>evaluation: {h(evaluation.get('status'))} "
                   f"(model {h(prov.get('eval_model') or prov.get('model'))})</p>")
    claims = sorted(doc.get("claims") or [], key=lambda c: (c.get("rank") or 10**6))
    out.append(f"<h2>Claims <span class='count'>{len(claims)}</span></h2><ol id='claims'>")
    for c in claims:
        start = c.get("start")
        link = time_link(row, float(start)) if isinstance(start, int | float) else None
        t = f'<a class="t" href="{h(link)}" rel="noreferrer">{stamp(float(start))}</a> ' \
            if link and isinstance(start, int | float) else ""
        meta = ", ".join(x for x in (
            h(c.get("type")),
            f"importance {h(c['importance'])}" if c.get("importance") is not None else "",
            f"confidence {float(c['confidence']):.2f}"
            if isinstance(c.get("confidence"), int | float) else "",
            "duplicate" if c.get("duplicate_of") is not None else "") if x)
        out.append(f"<li>{t}{h(c.get('text'))} <span class='meta'>({meta})</span>"
                   + (f"<blockquote>{h(c.get('evidence'))}</blockquote>"
                      if c.get("evidence") else "") + "</li>")
    out.append("</ol>")
    for key, label in (("people", "People"), ("concepts", "Concepts")):
        items = doc.get(key) or []
        if items:
            out.append(f"<h3>{label}</h3><ul>" + "".join(
                f"<li>{h(i.get('name') or i.get('term'))}: "
                f"{h(i.get('role') or i.get('explanation') or '')}</li>"
                if isinstance(i, dict) else f"<li>{h(i)}</li>" for i in items) + "</ul>")
    return "".join(out)


SNIPPET_MARK = "**"  # what ytpiped.store.search puts around the matched words


def marked(snippet: str) -> str:
    """A search snippet with its matched words in <mark>."""
    parts = snippet.split(SNIPPET_MARK)
    return "".join(h(p) if i % 2 == 0 else f"<mark>{h(p)}</mark>" for i, p in enumerate(parts))


def search_page(query: str, hits: Sequence[Mapping[str, Any]] | None, problem: str | None) -> str:
    out = [f"<h1>Search</h1><form action='/search' method='get'><input name='q' "
           f"value='{h(query)}' type='search'> <button>search</button></form>"]
    if problem:
        out.append(f"<p class='alert'>{h(problem)}</p>")
    for hit in hits or []:
        link = safe_url(hit.get("link"))
        vid = str(hit.get("video_id") or "")
        # a video hit (its metadata matched) links to the video without a time
        when = hit.get("time") or "open"
        t = f"<a class='t' href='{h(link)}' rel='noreferrer'>{h(when)}</a>" if link else \
            h(hit.get("time") or "")
        what = " · ".join(str(x) for x in (hit.get("kind"), hit.get("field")) if x)
        out.append(f"<div class='hit'><a href='{video_href(vid)}'>{h(hit.get('title') or vid)}"
                   f"</a> {t} <span class='meta'>{h(what)}</span><p>"
                   f"{marked(str(hit.get('snippet') or hit.get('text') or ''))}</p></div>")
    if query and hits is not None and not hits:
        out.append("<p>no hits</p>")
    return "".join(out)
