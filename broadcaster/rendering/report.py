"""The post-incident report as Markdown: every section, from the report's plain data.

Text from people and monitoring (titles, reasons, review sections) is written inside
Markdown code spans or escaped, so a title cannot turn into a link or a heading.
"""

from __future__ import annotations

import re
from typing import Any

from broadcaster.rendering.clock import iso

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")

CHANNEL_COLUMNS = ("sent", "delivered", "failed", "bounced", "fell_back", "opted_out")


def escape(text: Any) -> str:
    """Plain text that Markdown shows as written, on one line."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text or "").split()))


def seconds(value: float | None) -> str:
    """``95.0`` → ``1m 35s``; None → ``–``."""
    if value is None:
        return "–"
    whole = int(round(value))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _when(ts: float | None) -> str:
    return iso(ts) if ts else "–"


def markdown(report: dict[str, Any]) -> str:
    """The whole report: summary, timeline, metrics, deliveries, replies, review."""
    inc = report["incident"]
    m = report["metrics"]
    lines = [f"# Post-incident report: {escape(inc['title'])}", ""]
    if report["exercise"]:
        lines += ["**EXERCISE** — this incident was a drill; nothing reached the public.", ""]
    lines += [
        f"- Incident: `{inc['id']}` ({escape(inc['severity'])}, {escape(inc['status'])})",
        f"- Started: {_when(m['started_at'])}",
        f"- Resolved: {_when(inc['resolved_at'])}",
        f"- Exercise: {'yes' if report['exercise'] else 'no'}",
        "",
        "## Timeline",
        "",
        "| time (UTC) | what | who | detail |",
        "|---|---|---|---|",
    ]
    for item in report["timeline"]:
        detail = " — ".join(x for x in (escape(item["title"]), escape(item["detail"])) if x)
        lines.append(
            f"| {_when(item['at'])} | {escape(item['kind'])} | {escape(item['who'])} | {detail} |"
        )
    approval = m["time_to_approval_s"]
    promises = m["promises"]
    lines += [
        "",
        "## Metrics",
        "",
        f"- Time to first statement: {seconds(m['time_to_first_statement_s'])}",
        f"- Time to first delivery: {seconds(m['time_to_first_delivery_s'])}",
        f"- Time to approval: median {seconds(approval['median'])}, "
        f"max {seconds(approval['max'])} ({approval['count']} approved)",
        f"- Time to staff brief: {seconds(m['time_to_staff_brief_s'])}",
        f"- Promises (next update by): {promises['made']} made, {promises['kept']} kept, "
        f"{promises['missed']} missed",
        f"- Updates: {m['updates']['count']}, median gap {seconds(m['updates']['median_gap_s'])}",
        "",
        "## Deliveries",
        "",
        "| channel | " + " | ".join(c.replace("_", " ") for c in CHANNEL_COLUMNS) + " |",
        "|---|" + "---|" * len(CHANNEL_COLUMNS),
    ]
    deliveries = report["deliveries"]
    for channel, row in sorted(deliveries["channels"].items()):
        lines.append(
            f"| {escape(channel)} | " + " | ".join(str(row[c]) for c in CHANNEL_COLUMNS) + " |"
        )
    if not deliveries["channels"]:
        lines.append("| – |" + " 0 |" * len(CHANNEL_COLUMNS))
    reach = deliveries["reach_percent"]
    lines += [
        "",
        f"Reach: {'–' if reach is None else f'{reach}%'} of the subscribers of "
        f"{', '.join(escape(a) for a in deliveries['audiences']) or 'no audience'}.",
        "",
        "## Replies",
        "",
        f"- Replies: {report['replies']['count']}",
        f"- STOPs: {report['replies']['stops']}",
    ]
    for reply in report["replies"]["first"]:
        lines.append(f"  - {_when(reply['at'])} {escape(reply['from'])}: {escape(reply['body'])}")
    lines += ["", "## Review", ""]
    review = report["review"]["latest"]
    if review is None:
        lines.append("No review written yet.")
    else:
        lines += [
            f"Version {review['version']} by {escape(review['by'])}, {_when(review['at'])}.",
            "",
            "### What went well",
            "",
            escape(review["went_well"]) or "–",
            "",
            "### What did not",
            "",
            escape(review["went_badly"]) or "–",
            "",
            "### Actions",
            "",
        ]
        lines += [
            f"- {escape(a['action'])} (owner: {escape(a['owner'])})" for a in review["actions"]
        ]
        if not review["actions"]:
            lines.append("–")
    return "\n".join(lines) + "\n"
