"""The post-incident report's numbers, from plain facts: no Redis, no clock, no Flask.

Whoever builds a report (``web/report_facts.py``) gathers the facts — the incident, its
announcements, alerts, audit entries, delivery records, replies — as plain dicts and calls
``metrics`` and ``timeline`` here; tests feed a scripted timeline with known times.

Times are Unix seconds; every duration is in seconds from the incident's *start*: its first
alert, or its opening when no alert came first.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

# Ledger states that mean the message left us (receipts may move it on).
LEFT = ("sending", "sent", "delivered", "undelivered", "bounced", "dropped")
REACHED = ("sent", "delivered")
FAILED = ("failed", "undelivered", "dropped")

# Audit actions → the timeline's kinds (a published one is refined by what it says).
KINDS = {
    "announcement.created": "drafted",
    "announcement.published": "published",
    "announcement.approved": "approval",
    "announcement.rejected": "rejection",
    "announcement.bypassed": "bypass",
    "announcement.withdrawn": "withdrawal",
    "announcement.amended": "amended",
    "approval.refused": "approval refused",
    "promise.overdue": "reminder",
    "drill.started": "drill started",
    "drill.ended": "drill ended",
    "review.written": "review",
}


def start_of(incident: dict[str, Any], alerts: Iterable[dict[str, Any]]) -> float:
    """When the incident began: its first alert, else its opening."""
    times = [float(incident["opened_at"])]
    times += [float(a["at"]) for a in alerts if a.get("status", "firing") == "firing"]
    return min(times)


def _since(start: float, at: float | None) -> float | None:
    return None if at is None else round(max(0.0, at - start), 3)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def promises(announcements: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Every "next update by" customers were promised: kept (a customer-facing update came
    in time), missed (the time passed without one) or open (not yet due)."""
    # Promises are made to customers: only what they were told keeps one.
    published = sorted(
        (a for a in announcements if a.get("published_at") and a.get("customer_facing", True)),
        key=lambda a: a["published_at"],
    )
    found = []
    for i, made in enumerate(published):
        due = made.get("next_update_at")
        if not due:
            continue
        later = [a["published_at"] for a in published[i + 1 :]]
        nxt = later[0] if later else None
        if nxt is not None and nxt <= due:
            outcome = "kept"
        elif due <= now or nxt is not None:
            outcome = "missed"
        else:
            outcome = "open"
        found.append(
            {
                "announcement_id": made["id"],
                "made_at": made["published_at"],
                "due": due,
                "next_update_at": nxt,
                "outcome": outcome,
            }
        )
    return found


def metrics(
    incident: dict[str, Any],
    announcements: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    deliveries: list[dict[str, Any]],
    now: float,
    staff_briefed_at: float | None = None,
) -> dict[str, Any]:
    """The report's metrics.

    ``announcements``: dicts with ``id``, ``created_at``, ``published_at``, ``approved_by``,
    ``next_update_at`` and ``customer_facing`` (for customers, not only internal audiences).
    ``deliveries``: customer deliveries ``{channel, state, at}`` (not the staff brief).
    """
    start = start_of(incident, alerts)
    statements = [
        a["published_at"]
        for a in announcements
        if a.get("published_at") and a.get("customer_facing", True)
    ]
    delivered = [d["at"] for d in deliveries if d.get("state") in LEFT and d.get("at")]
    approvals = [
        a["published_at"] - a["created_at"]
        for a in announcements
        if a.get("approved_by") and a.get("published_at")
    ]
    made = promises(announcements, now)
    published = sorted(statements)
    gaps = [b - a for a, b in zip(published, published[1:], strict=False)]
    return {
        "started_at": start,
        "time_to_first_statement_s": _since(start, min(statements, default=None)),
        "time_to_first_delivery_s": _since(start, min(delivered, default=None)),
        "time_to_approval_s": {
            "median": _median(approvals),
            "max": round(max(approvals), 3) if approvals else None,
            "count": len(approvals),
        },
        "time_to_staff_brief_s": _since(start, staff_briefed_at),
        "promises": {
            "made": len(made),
            "kept": sum(p["outcome"] == "kept" for p in made),
            "missed": sum(p["outcome"] == "missed" for p in made),
        },
        "updates": {"count": len(published), "median_gap_s": _median(gaps)},
        "duration_s": _since(start, incident.get("resolved_at")),
    }


def per_channel(deliveries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per channel: sent, delivered, failed, bounced, fell back, opted out."""
    out: dict[str, dict[str, int]] = {}
    for d in deliveries:
        row = out.setdefault(
            d["channel"],
            dict.fromkeys(("sent", "delivered", "failed", "bounced", "fell_back", "opted_out"), 0),
        )
        state = d.get("state")
        row["sent"] += state in LEFT
        row["delivered"] += state == "delivered"
        row["failed"] += state in FAILED
        row["bounced"] += state == "bounced"
        row["fell_back"] += bool(d.get("fallback"))
        row["opted_out"] += state == "skipped" and d.get("error") == "opted out"
    return out


def reach(deliveries: list[dict[str, Any]], audience_size: int) -> float | None:
    """Percentage of the audiences' subscribers a message left us for (any channel)."""
    if audience_size <= 0:
        return None
    people = {d["subscriber_id"] for d in deliveries if d.get("state") in LEFT}
    return round(100.0 * min(len(people), audience_size) / audience_size, 1)


def per_minute(deliveries: list[dict[str, Any]], start: float) -> dict[str, dict[int, int]]:
    """Channel → minute since the start → deliveries that left us in that minute."""
    out: dict[str, dict[int, int]] = {}
    for d in deliveries:
        if d.get("state") in LEFT and d.get("at"):
            minute = max(0, int((d["at"] - start) // 60))
            row = out.setdefault(d["channel"], {})
            row[minute] = row.get(minute, 0) + 1
    return out


def timeline(
    entries: list[dict[str, Any]],
    announcements: dict[str, dict[str, Any]],
    alerts: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every alert and audited step, oldest first: ``{at, kind, who, announcement_id,
    title, detail}``. A publication is a *correction* when it corrects one, a *resolution*
    when it resolves the incident."""
    items = [
        {
            "at": float(a["at"]),
            "kind": "alert " + str(a.get("status", "firing")),
            "who": str(a.get("source", "monitoring")),
            "announcement_id": None,
            "title": str(a.get("title", "")),
            "detail": str(a.get("outcome", "")),
        }
        for a in alerts
    ]
    for entry in entries:
        kind = KINDS.get(entry["action"])
        if kind is None:
            continue
        details = entry.get("details") or {}
        ann = announcements.get(entry.get("announcement_id") or "", {})
        if kind == "published":
            if ann.get("status") == "resolved":
                kind = "resolution"
            elif ann.get("corrects"):
                kind = "correction"
            else:
                kind = "announcement"
        items.append(
            {
                "at": float(entry["at"]),
                "kind": kind,
                "who": details.get("person") or entry["actor"],
                "announcement_id": entry.get("announcement_id"),
                "title": str(details.get("title") or ann.get("title") or ""),
                "detail": str(details.get("reason") or details.get("scenario") or ""),
            }
        )
    return sorted(items, key=lambda item: item["at"])
