"""Component states over time, worked out from the component log: pure functions.

Plain data in (the events ``domain/components.py`` logs, already filtered to what the
public may see), plain data out, so tests script the times. The rules:

- An incident sets a component to the latest state one of its standing (not withdrawn)
  announcements named for it; ``operational`` clears it.
- A resolved incident (its latest standing announcement says ``resolved``) sets nothing:
  its components return to operational. A reopened one sets its states again.
- A component's state is the worst any open incident sets (``STATES`` order), else
  ``operational``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from broadcaster.domain.components import STATES

OPERATIONAL = "operational"
_RANK = {state: rank for rank, state in enumerate(STATES)}

# Statuspage's page indicator from the worst component state (and the worst open
# incident's impact): maintenance and degraded performance are minor, a partial outage
# major, a major outage critical.
INDICATOR_OF_STATE = {
    "operational": "none",
    "under_maintenance": "minor",
    "degraded_performance": "minor",
    "partial_outage": "major",
    "major_outage": "critical",
}
INDICATORS = ("none", "minor", "major", "critical")
# An incident's Statuspage impact from its severity.
IMPACT_OF_SEVERITY = {"info": "none", "minor": "minor", "major": "major", "critical": "critical"}
# Statuspage's own descriptions, by what decided the indicator.
DESCRIPTION_OF_STATE = {
    "operational": "All Systems Operational",
    "under_maintenance": "Service Under Maintenance",
    "degraded_performance": "Partially Degraded Service",
    "partial_outage": "Partial System Outage",
    "major_outage": "Major System Outage",
}
DESCRIPTION_OF_IMPACT = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}


def worst(states: list[str]) -> str:
    """The most severe of ``states`` (operational for none)."""
    return max(states, key=lambda s: _RANK.get(s, 0), default=OPERATIONAL)


@dataclass(frozen=True)
class Snapshot:
    """The states in force from ``at`` on: component → state (operational ones left out),
    and component → the incidents that set it."""

    at: float
    states: dict[str, str]
    causes: dict[str, tuple[str, ...]] = field(default_factory=dict)


def replay(events: list[dict[str, Any]]) -> list[Snapshot]:
    """One snapshot after each event, oldest first (events sorted by ``at``, stable)."""
    standing: dict[str, list[dict[str, Any]]] = {}  # incident → its standing events
    owner: dict[str, str] = {}  # announcement → incident
    sets: dict[str, dict[str, str]] = {}  # incident → component → state it sets now
    snapshots = []
    for event in sorted(events, key=lambda e: e.get("at") or 0):
        if event.get("withdraws"):
            incident = owner.get(event["withdraws"], event.get("incident", ""))
            standing[incident] = [
                e for e in standing.get(incident, []) if e["announcement"] != event["withdraws"]
            ]
        else:
            incident = event["incident"]
            owner[event["announcement"]] = incident
            standing.setdefault(incident, []).append(event)
        sets[incident] = _sets(standing.get(incident, []))
        if not sets[incident]:
            del sets[incident]
        snapshots.append(_combine(float(event.get("at") or 0), sets))
    return snapshots


def _sets(standing: list[dict[str, Any]]) -> dict[str, str]:
    """What one incident sets, from its standing events (oldest first)."""
    if not standing or standing[-1].get("resolved"):
        return {}
    found: dict[str, str] = {}
    for event in standing:
        found.update(event.get("states") or {})
    return {c: s for c, s in found.items() if s != OPERATIONAL}


def _combine(at: float, sets: dict[str, dict[str, str]]) -> Snapshot:
    by_component: dict[str, list[tuple[str, str]]] = {}
    for incident, states in sets.items():
        for component, state in states.items():
            by_component.setdefault(component, []).append((state, incident))
    return Snapshot(
        at=at,
        states={c: worst([s for s, _ in pairs]) for c, pairs in by_component.items()},
        causes={c: tuple(sorted(i for _, i in pairs)) for c, pairs in by_component.items()},
    )


def current(snapshots: list[Snapshot], component: str) -> tuple[str, float | None]:
    """(state now, when it became that state; None if it never changed)."""
    state, since = OPERATIONAL, None
    for snap in snapshots:
        now = snap.states.get(component, OPERATIONAL)
        if now != state:
            state, since = now, snap.at
    return state, since


def daily(
    snapshots: list[Snapshot], component: str, now: float, timezone: str, days: int = 90
) -> list[dict[str, Any]]:
    """One entry per day (plan's zone) of the last ``days``, oldest first, today last:
    ``{"date", "state": the worst in force that day, "incidents": ids that set it}``."""
    tz = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, tz).date()
    times = [s.at for s in snapshots]
    out = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        start, end = _bounds(day, tz)
        first = bisect_right(times, start) - 1  # the snapshot in force as the day starts
        last = bisect_left(times, end)  # and those taken during the day
        in_day = ([snapshots[first]] if first >= 0 else []) + snapshots[first + 1 : last]
        states = [s.states.get(component, OPERATIONAL) for s in in_day]
        incidents = sorted({i for s in in_day for i in s.causes.get(component, ())})
        out.append({"date": day.isoformat(), "state": worst(states), "incidents": incidents})
    return out


def _bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def indicator(component_states: list[str], impacts: list[str]) -> dict[str, str]:
    """Statuspage's ``status``: the worse of the worst component state's indicator and the
    worst open incident's impact, with the description of whichever decided it."""
    state = worst(component_states)
    by_state = INDICATOR_OF_STATE[state]
    by_impact = max(impacts, key=INDICATORS.index, default="none")
    if INDICATORS.index(by_impact) > INDICATORS.index(by_state):
        return {"indicator": by_impact, "description": DESCRIPTION_OF_IMPACT[by_impact]}
    return {"indicator": by_state, "description": DESCRIPTION_OF_STATE[state]}
