"""``/admin/monitoring``: recent monitoring webhook events and which plan rule they matched."""

from __future__ import annotations

import json
from typing import Any

from flask import render_template, request

from broadcaster.admin.blueprint import bp
from broadcaster.admin.guard import signed_in
from broadcaster.monitoring import events, from_alertmanager, from_generic
from broadcaster.monitoring_plan import Monitoring
from broadcaster.services import services

PER_PAGE = 50


def describe_rule(monitoring: Monitoring, source: str, raw: str) -> str | None:
    """The plan rule this payload matches now ("rule 2: severity=critical …"), or None.

    Events record what was done, not which rule did it, so the rule is found again the
    way the processor finds it: first rule in plan order matching the labels.
    """
    try:
        payload = json.loads(raw)
        event = from_generic(payload) if source == "generic" else from_alertmanager(payload, source)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    label_sets = [event.labels, *(a.labels for a in event.alerts)]
    for labels in label_sets:
        for number, rule in enumerate(monitoring.rules, start=1):
            if rule.matches(labels):
                parts = [f"{k}={v}" for k, v in rule.match.items()]
                parts += [f"{k}~{v}" for k, v in rule.match_re.items()]
                what = (
                    f"holding statement {rule.holding_statement}"
                    if rule.holding_statement and not rule.draft
                    else "a draft for approval"
                )
                matcher = " ".join(parts) or "any"
                return f"rule {number}: {matcher} → {', '.join(rule.audiences)}; {what}"
    return None


@bp.get("/monitoring")
@signed_in("read")
def monitoring():  # type: ignore[no-untyped-def]
    """Newest first, a page at a time."""
    svc = services()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    total, items = events(svc, (page - 1) * PER_PAGE, PER_PAGE)
    shown: list[dict[str, Any]] = [
        {
            **item,
            "rule": describe_rule(svc.plan.monitoring, item.get("source", ""), item.get("raw", ""))
            if item.get("matched")
            else None,
        }
        for item in items
    ]
    return render_template(
        "admin/monitoring.html",
        events=shown,
        page=page,
        more=page * PER_PAGE < total,
        total=total,
    )
