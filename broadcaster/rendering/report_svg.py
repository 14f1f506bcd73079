"""The report's pictures as server-rendered SVG: no script, no inline style (CSP).

Colours and lines are SVG presentation attributes (``fill``, ``stroke``), which the page's
Content-Security-Policy allows, unlike ``style``. Every text is escaped. Each function takes
the report's plain data and returns one ``<svg>`` element as Markup.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40
PALETTE = ("#2e6da4", "#9a6700", "#6f42c1", "#00897b", "#c2185b", "#5d4037")
KEPT, MISSED, OPEN = "#1b7f3b", "#b00020", "#777777"


def _svg(label: str, body: list[str], height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _scale(lo: float, hi: float, size: float, offset: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: round(offset + (v - lo) / span * size, 1)


def _axes(x_label: str, y_label: str, height: int = HEIGHT) -> list[str]:
    bottom = height - BOTTOM
    return [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#444"/>',
        f'<text x="{WIDTH - RIGHT}" y="{height - 8}" text-anchor="end" font-size="11">'
        f"{escape(x_label)}</text>",
        f'<text x="4" y="{TOP + 4}" font-size="11">{escape(y_label)}</text>',
    ]


def deliveries_per_minute(per_minute: dict[str, dict[str, int]]) -> Markup:
    """One line per channel: deliveries that left us in each minute since the start."""
    label = "Deliveries per minute per channel"
    points = {ch: {int(m): n for m, n in rows.items()} for ch, rows in per_minute.items()}
    if not any(points.values()):
        return _svg(label, [*_axes("minutes", "deliveries"), _empty()])
    last = max(max(rows) for rows in points.values() if rows)
    top = max(max(rows.values()) for rows in points.values() if rows)
    x = _scale(0, max(last, 1), WIDTH - LEFT - RIGHT, LEFT)
    y = _scale(0, top, -(HEIGHT - TOP - BOTTOM), HEIGHT - BOTTOM)
    body = _axes("minutes since the start", f"deliveries (max {top})")
    for i, (channel, rows) in enumerate(sorted(points.items())):
        colour = PALETTE[i % len(PALETTE)]
        line = " ".join(f"{x(m)},{y(rows.get(m, 0))}" for m in range(0, last + 1))
        body.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body.append(
            f'<text x="{LEFT + 8 + 90 * i}" y="{HEIGHT - 22}" font-size="11" fill="{colour}">'
            f"■ {escape(channel)}</text>"
        )
    return _svg(label, body)


def announcements_and_promises(
    start: float, end: float, announcements: list[dict[str, Any]], promises: list[dict[str, Any]]
) -> Markup:
    """The announcements (ticks) and their promises (bars to the promised time) on one
    time axis: kept in green, missed in red, not yet due in grey."""
    label = "Announcements and promised updates"
    times = [start, end] + [a["published_at"] for a in announcements if a.get("published_at")]
    times += [p["due"] for p in promises]
    lo, hi = min(times), max(times)
    height = TOP + BOTTOM + 30 + 18 * max(1, len(promises))
    x = _scale(lo, hi, WIDTH - LEFT - RIGHT, LEFT)
    body = _axes(f"minutes since the start ({round((hi - lo) / 60)} in all)", "", height)
    axis = TOP + 14
    for a in announcements:
        if a.get("published_at"):
            at = x(a["published_at"])
            body.append(
                f'<line x1="{at}" y1="{axis - 10}" x2="{at}" y2="{axis + 10}" stroke="#222" '
                f'stroke-width="3"><title>{escape(a.get("title", ""))}</title></line>'
            )
    for i, p in enumerate(promises):
        colour = {"kept": KEPT, "missed": MISSED}.get(p["outcome"], OPEN)
        row = axis + 22 + 18 * i
        body.append(
            f'<line x1="{x(p["made_at"])}" y1="{row}" x2="{x(p["due"])}" y2="{row}" '
            f'stroke="{colour}" stroke-width="6"><title>{escape(p["outcome"])}</title></line>'
        )
        body.append(
            f'<text x="{x(p["due"]) + 4}" y="{row + 4}" font-size="11" fill="{colour}">'
            f"{escape(p['outcome'])}</text>"
        )
    if not promises:
        body.append(f'<text x="{LEFT + 8}" y="{axis + 30}" font-size="11">no promises made</text>')
    return _svg(label, body, height)


def trend(drills: list[dict[str, Any]]) -> Markup:
    """Time to first statement and to approval (median) over past drills, oldest first."""
    label = "Drill trend: time to first statement and to approval"
    series = {
        "time to first statement": [d["metrics"].get("time_to_first_statement_s") for d in drills],
        "time to approval (median)": [d["metrics"].get("time_to_approval_s") for d in drills],
    }
    known = [v for values in series.values() for v in values if v is not None]
    if len(drills) < 1 or not known:
        return _svg(label, [*_axes("drills", "seconds"), _empty()])
    top = max(known) or 1.0
    x = _scale(0, max(len(drills) - 1, 1), WIDTH - LEFT - RIGHT, LEFT)
    y = _scale(0, top, -(HEIGHT - TOP - BOTTOM), HEIGHT - BOTTOM)
    body = _axes("drills, oldest first", f"seconds (max {round(top)})")
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i]
        pts = [(x(j), y(v)) for j, v in enumerate(values) if v is not None]
        line = " ".join(f"{a},{b}" for a, b in pts)
        body.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [f'<circle cx="{a}" cy="{b}" r="3" fill="{colour}"/>' for a, b in pts]
        body.append(
            f'<text x="{LEFT + 8 + 200 * i}" y="{HEIGHT - 22}" font-size="11" fill="{colour}">'
            f"■ {escape(name)}</text>"
        )
    return _svg(label, body)


def _empty() -> str:
    return f'<text x="{LEFT + 8}" y="{TOP + 40}" font-size="12">nothing yet</text>'
