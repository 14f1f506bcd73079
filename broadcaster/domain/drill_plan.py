"""The ``[drills]`` part of the crisis plan: rehearsal scenarios and who a drill may reach.

```toml
[drills]
audiences = ["staff"]        # the only people a drill may ever reach
[drills.scenarios.payments]
description = "Card payments fail at peak time"
alert = { key = "drill-payments", title = "Payments failing", severity = "critical",
          labels = { service = "payments" } }
resolve_after_minutes = 20   # optional: the scenario resolves the alert by itself
```

A scenario's alert goes through the monitoring rules like a real alert, so a drill
rehearses the real plan; ``audiences`` bounds who hears it (``delivery/drill_guard.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from broadcaster.domain.incidents import SEVERITIES

RESOLVE_MAX = 24 * 60  # minutes: a drill is rehearsed in a day, not left running
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LABEL_VALUE_MAX = 200


@dataclass(frozen=True)
class DrillAlert:
    """The alert a scenario injects, in the generic monitoring shape."""

    key: str
    title: str
    severity: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    alert: DrillAlert
    resolve_after_minutes: int | None = None


@dataclass(frozen=True)
class DrillPlan:
    """Who drills may reach, and the scenarios to rehearse."""

    audiences: tuple[str, ...]
    scenarios: dict[str, Scenario] = field(default_factory=dict)


def labels(alert: DrillAlert) -> dict[str, str]:
    """The labels the alert carries, with its severity (as the generic hook adds it)."""
    return {**alert.labels, "severity": alert.severity}


def parse_drills(
    check: Any, data: dict[str, Any], audiences: dict[str, Any], monitoring: Any
) -> DrillPlan | None:
    """Validate ``[drills]`` through the plan's checker; None when the plan has none.

    A scenario's alert must match one of the monitoring rules: a drill that no rule picks
    up would rehearse nothing.
    """
    if "drills" not in data:
        return None
    raw = check.table(data, "drills")
    check.known_keys(raw, "drills", ("audiences", "scenarios"))
    names = raw.get("audiences")
    chosen: list[str] = []
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        check.fail("drills.audiences", "must be a non-empty list of audience names")
    else:
        for name in names:
            if name not in audiences:
                check.fail("drills.audiences", f"unknown audience {name!r}")
            elif name not in chosen:
                chosen.append(name)
    scenarios: dict[str, Scenario] = {}
    raw_scenarios = raw.get("scenarios", {})
    if not isinstance(raw_scenarios, dict):
        check.fail("drills.scenarios", "must be a table of scenarios ([drills.scenarios.NAME])")
        raw_scenarios = {}
    for name, entry in raw_scenarios.items():
        scenario = _scenario(check, name, entry)
        if scenario is None:
            continue
        if monitoring.rule_for(labels(scenario.alert)) is None:
            check.fail(
                f"drills.scenarios.{name}.alert",
                "matches no [[monitoring.rules]] (its labels, with severity, must match one)",
            )
        scenarios[name] = scenario
    return DrillPlan(audiences=tuple(chosen), scenarios=scenarios)


def _scenario(check: Any, name: str, raw: Any) -> Scenario | None:
    key = f"drills.scenarios.{name}"
    if not _NAME.match(name):
        check.fail(key, "name must be lower-case letters, digits, - or _ (at most 63)")
    if not isinstance(raw, dict):
        check.fail(key, "must be a table")
        return None
    check.known_keys(raw, key, ("description", "alert", "resolve_after_minutes"))
    description = check.string(raw, f"{key}.description")
    alert = _alert(check, key, raw.get("alert"))
    after = raw.get("resolve_after_minutes")
    if after is not None and (
        not isinstance(after, int) or isinstance(after, bool) or not 1 <= after <= RESOLVE_MAX
    ):
        check.fail(
            f"{key}.resolve_after_minutes", f"must be a whole number of minutes, 1 to {RESOLVE_MAX}"
        )
        after = None
    if alert is None:
        return None
    return Scenario(name, description, alert, after)


def _alert(check: Any, key: str, raw: Any) -> DrillAlert | None:
    where = f"{key}.alert"
    if not isinstance(raw, dict):
        check.fail(where, "missing" if raw is None else "must be a table {key, title, severity}")
        return None
    check.known_keys(raw, where, ("key", "title", "severity", "labels"))
    alert_key = check.string(raw, f"{where}.key")
    title = check.string(raw, f"{where}.title")
    severity = raw.get("severity")
    if severity not in SEVERITIES:
        check.fail(f"{where}.severity", f"must be one of {', '.join(SEVERITIES)}")
        severity = "major"
    labels = raw.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= _LABEL_VALUE_MAX
        for k, v in labels.items()
    ):
        check.fail(f"{where}.labels", "must be a table of label = text")
        labels = {}
    return DrillAlert(alert_key, title, severity, dict(labels))
