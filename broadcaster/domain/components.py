"""Components: the parts of the service the status page reports on, one state each.

```toml
[components.payments]
name = { en = "Payments", nl = "Betalingen" }   # or plain text: name = "Payments"
group = { en = "Money", nl = "Geld" }           # optional, text or a table like name
```

An announcement may set component states (``"components": {"payments": "major_outage"}``),
and so may a monitoring rule (``components = {payments = "major_outage"}``). The states are
Statuspage's. Every published announcement of an incident that touches a component is
written to one append-only log (:data:`LOG_KEY`), in the publishing transaction of the
announcement service (the one way in), with its time; a withdrawal is logged too. What a
component's state was at any time is worked out from that log
(``domain/component_history.py``), so the state itself is never stored anywhere else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import closes
from broadcaster.domain.plan_text import LocalText, parse_local_text, text_in

# Least to most severe: a day's (or several incidents') worst state is the last of these.
STATES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
LOG_KEY = "bc:components:log"  # list of JSON events, in commit order
MAX_COMPONENTS = 100  # a status page with more is a list nobody reads
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Component:
    """One component of the plan: its id (the TOML key), names per locale, optional group."""

    id: str
    name: LocalText  # locale → name; "" is the name for every locale (domain/plan_text.py)
    group: LocalText | None = None
    position: int = 0

    def name_for(self, locale: str, default_locale: str) -> str:
        return text_in(self.name, locale, default_locale)

    def group_for(self, locale: str, default_locale: str) -> str | None:
        return text_in(self.group, locale, default_locale) if self.group else None


def parse_states(value: Any) -> tuple[dict[str, str], str | None]:
    """``{component: state}`` as given, and the first problem with its shape or states."""
    if value is None:
        return {}, None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return {}, 'must be a table of component = state, like {payments = "major_outage"}'
    for name, state in value.items():
        if state not in STATES:
            return {}, f"component {name!r}: unknown state {state!r} (one of: {', '.join(STATES)})"
    return dict(value), None


def problems(value: Any, components: tuple[Component, ...]) -> list[str]:
    """What is wrong with an announcement's ``components``: unknown component or state."""
    states, problem = parse_states(value)
    if problem:
        return [problem]
    known = [c.id for c in components]
    return [
        f"unknown component {name!r} (known: {', '.join(known) or 'none: the plan declares none'})"
        for name in states
        if name not in known
    ]


def parse_components(
    check: Any,
    data: dict[str, Any],
    locales: tuple[str, ...],
    default_locale: str,
    rules: tuple[Any, ...] = (),
) -> tuple[Component, ...]:
    """Validate ``[components]`` (and the components monitoring ``rules`` set) via ``check``."""
    raw = check.table(data, "components", required=False)
    if len(raw) > MAX_COMPONENTS:
        check.fail("components", f"at most {MAX_COMPONENTS} components")
    found = []
    for position, (cid, table) in enumerate(raw.items()):
        key = f"components.{cid}"
        if not _ID.fullmatch(cid):
            check.fail(key, "the id must be lower-case letters, digits, - or _ (at most 64)")
            continue
        if not isinstance(table, dict):
            check.fail(key, "must be a table with a name")
            continue
        check.known_keys(table, key, ("name", "group"))
        name = parse_local_text(
            check, table.get("name"), f"{key}.name", locales, default_locale, required=True
        )
        group = parse_local_text(
            check, table.get("group"), f"{key}.group", locales, default_locale, required=False
        )
        found.append(Component(id=cid, name=name, group=group or None, position=position + 1))
    known = [c.id for c in found]
    for i, rule in enumerate(rules):
        for name in getattr(rule, "components", {}) or {}:
            if name not in known:
                check.fail(
                    f"monitoring.rules[{i}].components",
                    f"unknown component {name!r} (known: {', '.join(known) or 'none'})",
                )
    return tuple(found)


def touched(incident: dict[str, Any], announcement: Announcement) -> list[str]:
    """The components an incident has set so far, this announcement's included."""
    return sorted(set(incident.get("components") or ()) | set(announcement.components))


def record(pipe: Pipeline, announcement: Announcement, incident: dict[str, Any]) -> None:
    """Log a published announcement of an incident that touches components (in its MULTI).

    Every one is logged, not only those that name states: a resolution returns the
    incident's components to operational, and a later update may say otherwise.
    """
    if not incident.get("components") or announcement.exercise:
        return  # a drill's states are rehearsed, never the service's (domain/drills.py)
    titles = {"": announcement.title}
    titles.update({k: t.get("title", "") for k, t in announcement.translations.items()})
    event = {
        "at": announcement.published_at,
        "incident": announcement.incident_id,
        "announcement": announcement.id,
        "audiences": list(announcement.audiences),
        "states": dict(announcement.components),
        "resolved": closes(announcement.status),
        "titles": titles,
    }
    pipe.rpush(LOG_KEY, json.dumps(event))


def record_withdrawal(pipe: Pipeline, announcement: Announcement, incident: dict[str, Any]) -> None:
    """Log that an announcement no longer stands (its states stop counting from then)."""
    if incident.get("components") and not announcement.exercise:
        event = {
            "at": announcement.withdrawn_at,
            "incident": announcement.incident_id,
            "withdraws": announcement.id,
        }
        pipe.rpush(LOG_KEY, json.dumps(event))


def events(r: redis.Redis) -> list[dict[str, Any]]:
    """Every logged event, oldest first (plain data for ``component_history``)."""
    return [json.loads(raw) for raw in r.lrange(LOG_KEY, 0, -1)]
