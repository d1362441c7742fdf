"""Charts drawn on the server as SVG text (issue 14): a line chart and a stacked bar chart, readable without
JavaScript, sized by their viewBox (they scale to their container), accessible (`role="img"`, an `aria-label`,
a `<title>` and a `<desc>` that says the latest values in words) and safe: every piece of text that reaches the
SVG (titles, series names, labels, units) is escaped here, so a task title or an agent name an agent chose
cannot become markup. No JavaScript and no chart library: a chart is a string the page embeds as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from pydantic import BaseModel, Field

# Colours that stay apart for the common kinds of colour blindness (Okabe and Ito), then greys.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#999999")
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 34, 58  # room for the y labels, the title and legend, and the x labels
MAX_X_LABELS = 8
MAX_LABEL = 20  # characters of an x label (nights and session ids fit)
MAX_POINTS = 2000  # more points than this are refused: a chart of more is unreadable and slow to draw


class Series(BaseModel):
    """One named series of a chart: a value per label (None: no value there, the line breaks)."""

    name: str
    values: list[float | None] = Field(default_factory=list)
    color: str | None = Field(default=None, description="a colour of the palette when left out")


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _fmt(value: float, unit: str = "") -> str:
    """A value as a person reads it: $1.25, 83%, 1.2k, 0.35."""
    if unit == "$":
        return f"${value:,.2f}" if abs(value) < 100 else f"${value:,.0f}"
    size = abs(value)
    text = (
        f"{value / 1e6:.1f}M" if size >= 1e6 else f"{value / 1e3:.1f}k" if size >= 1e4 else
        f"{value:.0f}" if size >= 100 or value == int(value) else f"{value:.2f}"
    )  # fmt: skip
    return text + (unit if unit else "")


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """Round steps from 0 up to at least `high` (0, 0.5, 1, 1.5 ...; 0, 20, 40 ...)."""
    if not math.isfinite(high) or high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    if len(labels) > MAX_POINTS:
        raise ValueError(f"a chart shows at most {MAX_POINTS} points, not {len(labels)}: group them (per night)")
    for one in series:
        if len(one.values) != len(labels):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(labels)} labels")


def _colors(series: Sequence[Series]) -> list[str]:
    return [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def _open(title: str, desc: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}" class="chart" font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{_e(title)}</title>",
        f"<desc>{_e(desc)}</desc>",
        f'<text x="{LEFT}" y="14" font-size="13" font-weight="600" fill="#222">{_e(title)}</text>',
    ]


def _empty(title: str, width: int, height: int) -> str:
    parts = _open(title, "no data yet", width, height)
    parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="#777">no data yet</text>')
    return "\n".join([*parts, "</svg>"])


def _describe(labels: Sequence[str], series: Sequence[Series], unit: str) -> str:
    """The chart in words for a screen reader: the span, and each series' latest value."""
    latest = []
    for one in series:
        known = [(labels[i], v) for i, v in enumerate(one.values) if v is not None]
        if known:
            latest.append(f"{one.name}: {_fmt(known[-1][1], unit)} at {known[-1][0]}")
    span = f"{labels[0]} to {labels[-1]}" if len(labels) > 1 else labels[0]
    return f"{len(labels)} points, {span}. Latest: " + ("; ".join(latest) or "none")


def _frame(labels: Sequence[str], top: float, unit: str, width: int, height: int) -> tuple[list[str], float]:
    """The axes, grid lines, y labels and (thinned) x labels; the plot's width per label."""
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    step = plot_w / max(1, len(labels))
    parts = ['<g class="axes" stroke="#ddd" stroke-width="1">']
    for tick in nice_ticks(top):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
    parts.append("</g>")
    parts.append('<g class="y-labels" fill="#555" text-anchor="end">')
    for tick in nice_ticks(top):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}">{_e(_fmt(tick, unit))}</text>')
    parts.append("</g>")
    chars = min(MAX_LABEL, max(len(label) for label in labels))
    room = max(2, min(MAX_X_LABELS, int(plot_w // (chars * 6.2 + 12))))  # labels that fit side by side
    every = max(1, math.ceil(len(labels) / room))
    parts.append('<g class="x-labels" fill="#555" text-anchor="middle">')
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + step * (i + 0.5)
            parts.append(f'<text x="{x:.1f}" y="{height - BOTTOM + 16}">{_e(label[:MAX_LABEL])}</text>')
    parts.append("</g>")
    return parts, step


def _legend(series: Sequence[Series], colors: Sequence[str], width: int, height: int) -> list[str]:
    parts = ['<g class="legend" fill="#333">']
    x = LEFT
    for one, color in zip(series, colors, strict=True):
        name = one.name[:40]
        parts.append(f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{_e(color)}"/>')
        parts.append(f'<text x="{x + 14}" y="{height - 9}">{_e(name)}</text>')
        x += 24 + 7 * len(name)
        if x > width - 60:
            break
    parts.append("</g>")
    return parts


def line_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "", width: int = WIDTH,
    height: int = HEIGHT,
) -> str:  # fmt: skip
    """A line per series over the labels (nights, sessions); a missing value breaks the line. Each point has a
    tooltip (`<title>`): label, series, value."""
    _check(labels, series)
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not values:
        return _empty(title, width, height)
    top = max(nice_ticks(max(values)))
    parts = _open(title, _describe(labels, series, unit), width, height)
    frame, step = _frame(labels, top, unit, width, height)
    parts += frame
    plot_h, colors = height - TOP - BOTTOM, _colors(series)
    shown, plain = [_e(label) for label in labels], _e(unit) == unit  # numbers need no escaping; a unit may
    for one, color in zip(series, colors, strict=True):
        name = _e(one.name)
        parts.append(f'<g class="series" aria-label="{name}">')
        run: list[str] = []
        dots = []
        for i, value in enumerate([*one.values, None]):
            if value is None:
                if len(run) > 1:
                    parts.append(f'<polyline fill="none" stroke="{_e(color)}" stroke-width="2" '
                                 f'points="{" ".join(run)}"/>')  # fmt: skip
                run = []
                continue
            x, y = LEFT + step * (i + 0.5), TOP + plot_h - plot_h * max(0.0, value) / top
            run.append(f"{x:.1f},{y:.1f}")
            tip = f"{shown[i]} · {name}: {_fmt(value, unit) if plain else _e(_fmt(value, unit))}"
            dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{tip}</title></circle>')
        parts += [f'<g fill="{_e(color)}">', *dots, "</g>", "</g>"]
    parts += _legend(series, colors, width, height)
    return "\n".join([*parts, "</svg>"])


def stacked_bars(
    title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "", width: int = WIDTH,
    height: int = HEIGHT,
) -> str:  # fmt: skip
    """A bar per label, the series stacked in order (None and negative values count as 0). Each segment has a
    tooltip (`<title>`): label, series, value."""
    _check(labels, series)
    totals = [sum(max(0.0, s.values[i] or 0.0) for s in series) for i in range(len(labels))]
    if not labels or not any(totals):
        return _empty(title, width, height)
    top = max(nice_ticks(max(totals)))
    parts = _open(title, _describe(labels, series, unit), width, height)
    frame, step = _frame(labels, top, unit, width, height)
    parts += frame
    plot_h, colors = height - TOP - BOTTOM, _colors(series)
    bar_w = max(1.0, step * 0.7)
    base = [0.0] * len(labels)
    shown, plain = [_e(label) for label in labels], _e(unit) == unit  # numbers need no escaping; a unit may
    for one, color in zip(series, colors, strict=True):
        name = _e(one.name)
        parts.append(f'<g class="series" fill="{_e(color)}" aria-label="{name}">')
        for i, raw in enumerate(one.values):
            value = max(0.0, raw or 0.0)
            if not value:
                continue
            h = plot_h * value / top
            y = TOP + plot_h - plot_h * base[i] / top - h
            x = LEFT + step * i + (step - bar_w) / 2
            tip = f"{shown[i]} · {name}: {_fmt(value, unit) if plain else _e(_fmt(value, unit))}"
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                         f"<title>{tip}</title></rect>")  # fmt: skip
            base[i] += value
        parts.append("</g>")
    parts += _legend(series, colors, width, height)
    return "\n".join([*parts, "</svg>"])
