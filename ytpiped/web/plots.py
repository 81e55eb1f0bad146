"""Line plots as inline SVG (no script, no library): pure functions of the points."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939")
W, H = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 22


def _fmt(v: float) -> str:
    return f"{v:.2f}" if 0 < abs(v) < 10 and v != int(v) else f"{v:.0f}"


def _clock(t: float, span: float) -> str:
    when = dt.datetime.fromtimestamp(t)
    return when.strftime("%a %H:%M" if span > 86400 else "%H:%M:%S" if span < 600 else "%H:%M")


def line_plot(lines: Mapping[str, Sequence[tuple[float, float]]], title: str, unit: str = "",
              plot_id: str = "") -> str:
    """An SVG of one line per entry (time on x); each line a <polyline> whose data-points
    attribute counts its points, and a legend. No points: a note instead of axes."""
    drawn = {name: pts for name, pts in lines.items() if pts}
    head = f'<figure class="plot" id="{escape(plot_id)}"><figcaption>{escape(title)}</figcaption>'
    if not drawn:
        return head + '<p class="empty">no history yet: the daemon keeps a point every ' \
                      'web.history_interval_s</p></figure>'
    ts = [t for pts in drawn.values() for t, _ in pts]
    vs = [v for pts in drawn.values() for _, v in pts]
    t0, t1 = min(ts), max(ts)
    v1 = max(max(vs), 0.0) or 1.0
    span = max(t1 - t0, 1e-9)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * pw if t1 > t0 else LEFT + pw / 2

    def y(v: float) -> float:
        return TOP + ph - max(v, 0.0) / v1 * ph

    out = [head, f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
                 f'aria-label="{escape(title)}">',
           f'<line class="axis" x1="{LEFT}" y1="{TOP + ph}" x2="{W - RIGHT}" y2="{TOP + ph}"/>',
           f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}"/>',
           f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">'
           f'{escape(_fmt(v1))}{escape(unit)}</text>',
           f'<text class="tick" x="{LEFT - 4}" y="{TOP + ph}" text-anchor="end">0</text>',
           f'<text class="tick" x="{LEFT}" y="{H - 6}">{escape(_clock(t0, span))}</text>',
           f'<text class="tick" x="{W - RIGHT}" y="{H - 6}" text-anchor="end">'
           f'{escape(_clock(t1, span))}</text>']
    legend = []
    for i, (name, pts) in enumerate(drawn.items()):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        out.append(f'<polyline class="series" data-series="{escape(name)}" '
                   f'data-points="{len(pts)}" fill="none" stroke="{color}" stroke-width="1.5" '
                   f'points="{coords}"><title>{escape(name)}: last {_fmt(pts[-1][1])}'
                   f'{escape(unit)}</title></polyline>')
        legend.append(f'<span class="key"><svg width="10" height="10"><rect width="10" '
                      f'height="10" fill="{color}"/></svg> '
                      f'{escape(name)} {escape(_fmt(pts[-1][1]))}</span>')
    out.append("</svg>")
    out.append(f'<div class="legend">{"".join(legend)}</div></figure>')
    return "".join(out)
