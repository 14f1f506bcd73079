"""Past drills with the key metrics of each one's post-incident report."""

from __future__ import annotations

import time
from typing import Any

from broadcaster.domain.errors import NotFound
from broadcaster.services import Services
from broadcaster.web import report_facts

KEY_METRICS = ("time_to_first_statement_s", "time_to_first_delivery_s", "time_to_staff_brief_s")


def key_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a drill is judged by, from its report."""
    m = report["metrics"]
    return {
        **{key: m[key] for key in KEY_METRICS},
        "time_to_approval_s": m["time_to_approval_s"]["median"],
        "promises_kept": m["promises"]["kept"],
        "promises_missed": m["promises"]["missed"],
        "reach_percent": report["deliveries"]["reach_percent"],
    }


def with_metrics(svc: Services, drills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``drills`` each with ``metrics`` (empty while its incident is unknown)."""
    now = time.time()
    out = []
    for drill in drills:
        metrics: dict[str, Any] = {}
        if drill.get("incident_id"):
            try:
                metrics = key_metrics(report_facts.report(svc, drill["incident_id"], now))
            except NotFound:
                metrics = {}
        out.append({**drill, "metrics": metrics})
    return out
