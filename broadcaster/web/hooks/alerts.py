"""Monitoring triggers: alert groups become incidents, holding statements go out at once.

An alert group (Alertmanager ``groupKey``, Grafana group key, generic ``key``) maps to
one incident. Repeats add nothing for customers; a resolve creates a draft (or the plan's
"all clear"); firing again within the reopen window reopens the same incident; and one
incident never emails or texts customers updates more often than ``min_interval`` — the
all-clear is not paced: it goes to everyone the incident emailed or texted. A Redis lock
per group makes concurrent deliveries of the same payload safe. A rule opens at most a few
new incidents per window; in a flood, further alert groups gather in one draft
(``floods.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broadcaster.domain import text_policy
from broadcaster.domain.incidents import SEVERITIES
from broadcaster.domain.monitoring_rules import HoldingStatement, MonitoringRule
from broadcaster.domain.text_policy import LINE, TITLE_MAX, encodable
from broadcaster.domain.tokens import Principal
from broadcaster.rendering import banners
from broadcaster.rendering.clock import format_time
from broadcaster.services import Services
from broadcaster.web.hooks.floods import Floods
from channels import PERSONAL

EVENTS_KEY = "bc:hooks:events"
EVENTS_KEPT = 1000


@dataclass
class Alert:
    fingerprint: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float | None = None


@dataclass
class MonitorEvent:
    """One webhook delivery from a monitoring tool, in one shape whatever the tool."""

    source: str
    group_key: str
    status: str  # firing | resolved (for the whole group)
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    title: str = ""
    # Set only by a drill (domain/drills.py): its incident is an exercise.
    drill_id: str | None = None


# An alert that claims to have started before 1970 or in the future (more than a clock's
# skew ahead) has a broken clock or a typo: its start is taken as unknown (now).
START_AHEAD_SECONDS = 24 * 3600


def _timestamp(value: str | None) -> float | None:
    if not value or value.startswith("0001-"):  # Go's zero time: not set
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None
    return ts if 0 <= ts <= time.time() + START_AHEAD_SECONDS else None


def from_alertmanager(payload: dict[str, Any], source: str = "alertmanager") -> MonitorEvent:
    """Alertmanager webhook v4 (Grafana's unified alerting sends the same shape)."""
    payload = encodable(payload)
    alerts = [
        Alert(
            fingerprint=a.get("fingerprint") or _fingerprint(a.get("labels", {})),
            status=a["status"],
            labels=a.get("labels", {}),
            annotations=a.get("annotations", {}),
            starts_at=_timestamp(a.get("startsAt")),
        )
        for a in payload["alerts"]
    ]
    labels = {**payload.get("commonLabels", {}), **payload.get("groupLabels", {})}
    if not labels and alerts:
        labels = dict(alerts[0].labels)
    # A group of different alerts shares no service or alertname label: a holding
    # statement's {service} and {alertname} then come from the alerts themselves.
    for name in ("service", "alertname"):
        if name not in labels:
            found = next((a.labels[name] for a in alerts if a.labels.get(name)), None)
            if found:
                labels[name] = found
    annotations = dict(payload.get("commonAnnotations", {}))
    annotations["summary"] = group_summary(alerts, annotations, labels)
    title = payload.get("title") or ""
    if not title or MADE_UP_TITLE.match(title):
        title = annotations["summary"]
    return MonitorEvent(
        source, payload["groupKey"], payload["status"], labels, annotations, alerts, title
    )


# Grafana's default title, "[FIRING:2]  (blue)": counts and label values, not words.
MADE_UP_TITLE = re.compile(r"^\s*\[(FIRING|RESOLVED)(:\d+)?\]", re.IGNORECASE)


def group_summary(alerts: list[Alert], common: dict[str, str], labels: dict[str, str]) -> str:
    """One line for a group of alerts: the common summary; else the first firing alert's
    own summary and "and N more"; else its alert name (and service)."""
    if (common.get("summary") or "").strip():
        return common["summary"].strip()
    firing = [a for a in alerts if a.status == "firing"] or alerts
    more = f" and {len(firing) - 1} more" if len(firing) > 1 else ""
    for alert in firing:
        summary = (alert.annotations.get("summary") or "").strip()
        if summary:
            return summary + more
    first = firing[0].labels if firing else labels
    name = first.get("alertname") or labels.get("alertname") or "monitoring alert"
    service = first.get("service") or labels.get("service")
    return (f"{name} ({service})" if service else name) + more


def from_generic(payload: dict[str, Any]) -> MonitorEvent:
    """The documented generic shape: key, status, title, summary, severity, labels."""
    payload = encodable(payload)
    labels = {**payload.get("labels", {})}
    if payload.get("severity"):
        labels.setdefault("severity", payload["severity"])
    annotations = {"summary": payload.get("summary") or payload["title"]}
    alert = Alert(_fingerprint(labels), payload["status"], labels, annotations, time.time())
    return MonitorEvent(
        "generic", payload["key"], payload["status"], labels, annotations, [alert], payload["title"]
    )


def _fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def record_event(svc: Services, source: str, raw: str, outcome: dict[str, Any]) -> str:
    """Keep the raw payload and what we did with it, for ``GET /api/v1/hooks/events``."""
    event_id = f"evt_{int(time.time() * 1000):x}{uuid.uuid4().hex[:6]}"
    entry = {
        "id": event_id,
        "source": source,
        "received_at": banners.iso(time.time()),
        "raw": raw[:20_000],
        **encodable(outcome),  # a refusal may quote a key that holds a lone surrogate
    }
    pipe = svc.redis.pipeline()
    pipe.lpush(EVENTS_KEY, json.dumps(entry))
    pipe.ltrim(EVENTS_KEY, 0, EVENTS_KEPT - 1)
    pipe.execute()
    return event_id


def events(svc: Services, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Recorded hook events, newest first."""
    raws = svc.redis.lrange(EVENTS_KEY, offset, offset + limit - 1)
    return int(svc.redis.llen(EVENTS_KEY)), [json.loads(r) for r in raws]


class _Blank(dict):
    """Placeholders without a value render as nothing rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


def fill(statement: HoldingStatement, values: dict[str, str], locale: str) -> tuple[str, str]:
    title, body = statement.texts[locale]
    formatter = string.Formatter()
    return (
        formatter.vformat(title, (), _Blank(values)).strip(),
        formatter.vformat(body, (), _Blank(values)).strip(),
    )


class Processor:
    """Turns monitoring events into incidents and announcements for one app."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.monitoring = svc.plan.monitoring
        self.floods = Floods(svc)

    def handle(self, event: MonitorEvent) -> dict[str, Any]:
        """Apply the plan's rules to one event; returns what happened."""
        rule = self.monitoring.rule_for(event.labels) or next(
            (r for a in event.alerts if (r := self.monitoring.rule_for(a.labels))), None
        )
        if rule is None:
            return {"outcome": "no rule matched: recorded, not broadcast", "matched": False}
        group = (
            f"bc:mon:group:{event.source}:{hashlib.sha256(event.group_key.encode()).hexdigest()}"
        )
        # One at a time per alert group: two copies of a payload must not open two incidents.
        with self.svc.redis.lock(f"{group}:lock", timeout=60, blocking_timeout=30):
            state = {k.decode(): v.decode() for k, v in self.svc.redis.hgetall(group).items()}
            result = self._apply(event, rule, state)
            self.svc.redis.hset(group, mapping=state)
            self.svc.redis.expire(group, 90 * 86400)
        result["matched"] = True
        # Kept with the event: the plan may change later, the rule that acted may not.
        result["rule"] = self.monitoring.describe(rule)
        if result.get("incident_id"):
            self._note(result["incident_id"], event, result["outcome"])
        return result

    def _apply(
        self, event: MonitorEvent, rule: MonitoringRule, state: dict[str, str]
    ) -> dict[str, Any]:
        now = time.time()
        known = set(filter(None, state.get("fingerprints", "").split(",")))
        fingerprints = {a.fingerprint for a in event.alerts}
        state["fingerprints"] = ",".join(sorted(known | fingerprints))
        incident_id = state.get("incident_id")
        resolved_at = float(state["resolved_at"]) if state.get("resolved_at") else None
        if event.status == "firing":
            if incident_id and resolved_at is None:
                new = fingerprints - known
                outcome = (
                    f"{len(new)} new alert(s) added to the incident"
                    if new
                    else "repeat: nothing sent"
                )
                return {"outcome": outcome, "incident_id": incident_id}
            if incident_id and now - resolved_at <= self.monitoring.reopen_window:
                state["resolved_at"] = ""
                ann = self._announce(event, rule, rule.holding_statement, incident_id)
                return {"outcome": "reopened", "incident_id": incident_id, **ann}
            # A drill's alert never joins a flood's draft: that draft is not an exercise.
            if not event.drill_id and not self.floods.may_open(
                rule
            ):  # a flood: one draft for a person, no texts
                return self.floods.gather(event, rule, state)
            ann = self._announce(event, rule, rule.holding_statement, None)
            state.update(incident_id=ann["incident_id"], opened_at=str(now), resolved_at="")
            return {"outcome": "opened", **ann}
        # resolved
        if state.get("gathered"):  # noted on the draft that gathered it; no draft of its own
            return self.floods.gather(event, rule, state)
        if not incident_id or resolved_at is not None:
            return {"outcome": "already resolved: nothing sent", "incident_id": incident_id}
        state["resolved_at"] = str(now)
        ann = self._announce(event, rule, rule.all_clear, incident_id, resolved=True)
        return {"outcome": "resolved", "incident_id": incident_id, **ann}

    def _values(self, event: MonitorEvent, locale: str, promised: float) -> dict[str, str]:
        tz = self.svc.plan.timezone
        started = min((a.starts_at for a in event.alerts if a.starts_at), default=time.time())
        labels = event.labels
        return {
            "service": labels.get("service") or labels.get("job") or labels.get("alertname", ""),
            "alertname": labels.get("alertname", ""),
            "summary": event.annotations.get("summary") or event.title,
            # No zone after the times: the email and pages that carry the statement name it
            # once; SMS and banner lines have no room for it.
            "started": format_time(started, locale, tz),
            "next_update": format_time(promised, locale, tz),
            "organisation": self.svc.plan.organisation,
        }

    def _announce(
        self,
        event: MonitorEvent,
        rule: MonitoringRule,
        statement_name: str | None,
        incident_id: str | None,
        resolved: bool = False,
    ) -> dict[str, Any]:
        plan = self.svc.plan
        severity = rule.severity or (
            event.labels.get("severity") if event.labels.get("severity") in SEVERITIES else "major"
        )
        statement = plan.monitoring.statements.get(statement_name or "")
        preapproved = statement is not None and not rule.draft
        # One time for the text's {next_update} and the announcement's promise, so the
        # reminder (delivery/promises.py) falls due exactly when the text says.
        promised = time.time() + self.monitoring.update_interval
        promises = (
            statement is not None
            and not resolved
            and any("{next_update}" in t + b for t, b in statement.texts.values())
        )
        if statement:
            title, body = fill(
                statement, self._values(event, plan.default_locale, promised), plan.default_locale
            )
            translations = {
                locale: dict(
                    zip(
                        ("title", "body"),
                        fill(statement, self._values(event, locale, promised), locale),
                        strict=True,
                    )
                )
                for locale in statement.texts
                if locale != plan.default_locale
            }
            status = "resolved" if resolved else statement.status
        else:  # a draft for a human to finish and approve
            summary = event.annotations.get("summary") or event.title or "monitoring alert"
            title = f"Resolved: {summary}" if resolved else summary
            body = (
                f"Monitoring reports that {summary!r} has resolved. Please check before publishing."
                if resolved
                else f"Monitoring reports: {summary}."
            )
            translations = {}
            status = "resolved" if resolved else "investigating"
        channels = list(rule.channels or plan.channels_by_severity.get(severity, ()))
        if preapproved and incident_id and not resolved:
            # Pacing is for updates: the all-clear goes to everyone alerted, however soon.
            channels = self._pace(incident_id, channels)
        data: dict[str, Any] = {
            "title": title,
            "body": body,
            "severity": severity,
            "status": status,
            "audiences": list(rule.audiences),
            "channels": channels,
            "translations": translations,
            "incident_id": incident_id,
            "need": rule.need,
        }
        if rule.components and not resolved:
            # The resolution names none: resolving the incident returns them to operational.
            data["components"] = dict(rule.components)
        if promises and status != "resolved":
            # The promise the text makes, as a fact too: short texts keep it when they drop
            # the sentence that says it, the reminder falls due then, and the status page
            # and brief show it.
            data["next_update_at"] = promised
        author = Principal(name=f"monitoring:{event.source}", role="monitor")
        # Alert text is whatever the monitoring sent: fitted to the text policy, not refused,
        # because an alert must still produce a statement.
        announcement = self.svc.announcements.create(
            data, author, preapproved=preapproved, sanitise=True, drill_id=event.drill_id
        )
        if announcement.published and set(announcement.channels) & set(PERSONAL):
            self.svc.redis.set(_paced_key(announcement.incident_id), time.time())
        return {
            "incident_id": announcement.incident_id,
            "announcement_id": announcement.id,
            "state": announcement.state,
            # A resolution's email/SMS are the incident's own (AnnouncementService.draft).
            "channels": announcement.channels,
        }

    def _pace(self, incident_id: str, channels: list[str]) -> list[str]:
        """Drop email/SMS when this incident messaged people less than min_interval ago."""
        last = self.svc.redis.get(_paced_key(incident_id))
        if last and time.time() - float(last) < self.monitoring.min_interval:
            return [c for c in channels if c not in PERSONAL]
        return channels

    def _note(self, incident_id: str, event: MonitorEvent, outcome: str) -> None:
        entry = {
            "at": banners.iso(time.time()),
            "source": event.source,
            "status": event.status,
            "outcome": outcome,
            "alerts": sorted(a.fingerprint for a in event.alerts),
            # Shown on the admin pages: alert text is cleaned like every other text.
            "title": text_policy.clean(event.title or "", LINE, max_chars=TITLE_MAX),
        }
        self.svc.redis.rpush(f"bc:inc:{incident_id}:monitoring", json.dumps(entry))


def _paced_key(incident_id: str) -> str:
    return f"bc:inc:{incident_id}:last_personal"


def incident_events(svc: Services, incident_id: str) -> list[dict[str, Any]]:
    """The monitoring events that opened, updated or resolved an incident, oldest first."""
    return [json.loads(r) for r in svc.redis.lrange(f"bc:inc:{incident_id}:monitoring", 0, -1)]
