"""Alert floods: beyond a rule's limit, alerts gather in one "several alerts" draft.

A rule opens at most ``new_incidents_per_rule`` incidents per window by itself (holding
statements, texts). Every further alert group it matches in a flood joins one pending draft
per rule, listing and counting the alerts, amended as more arrive: a person decides what
customers hear, and the Approvals page gets one item, not hundreds. Once that draft is
approved or rejected, the next gathered alert starts a new one (in the same incident while
the flood lasts).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from broadcaster.domain import text_policy
from broadcaster.domain.alert_floods import Gathered, NewIncidentLimit, rule_id
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import Conflict, Forbidden, NotFound
from broadcaster.domain.incidents import SEVERITIES
from broadcaster.domain.monitoring_rules import MonitoringRule
from broadcaster.domain.text_policy import LINE, TITLE_MAX
from broadcaster.domain.tokens import Principal
from broadcaster.infra import metrics
from broadcaster.rendering.clock import format_value
from broadcaster.services import Services

if TYPE_CHECKING:
    from broadcaster.web.hooks.alerts import MonitorEvent

# One author for every gathered draft, whichever tool sent the alerts: only the author may
# amend a pending draft, and alerts of one flood may come from Alertmanager and Grafana.
AUTHOR = Principal(name="monitoring:gathered", role="monitor")
LISTED = 50  # alerts named in the draft's body; the count always covers all of them
PENDING = "pending_approval"


def _alerts(n: int) -> str:
    return f"{n} alert" if n == 1 else f"{n} alerts"


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


class Floods:
    """The per-rule limit on new incidents, and the draft that gathers the rest."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.monitoring = svc.plan.monitoring
        self.limit = NewIncidentLimit(svc.redis, self.monitoring.new_incidents_window)

    def may_open(self, rule: MonitoringRule) -> bool:
        """Count a new incident for ``rule``; False when it has opened its limit already."""
        return self.limit.take(rule_id(rule), self.monitoring.limit_for(rule))

    def gather(
        self, event: MonitorEvent, rule: MonitoringRule, state: dict[str, str]
    ) -> dict[str, Any]:
        """Add this alert group to the rule's "several alerts" draft; updates ``state``."""
        gathered = Gathered(self.svc.redis, rule_id(rule))
        group = hashlib.sha256(f"{event.source}:{event.group_key}".encode()).hexdigest()[:16]
        started = [a.starts_at for a in event.alerts if a.starts_at]
        entry = {
            "at": time.time(),
            "started": min(started) if started else None,
            "status": event.status,
            "source": event.source,
            "severity": event.labels.get("severity", ""),
            "title": text_policy.clean(
                event.annotations.get("summary") or event.title or event.group_key,
                LINE,
                max_chars=TITLE_MAX,
            ),
        }
        # One at a time per rule: two alerts of a flood must amend one draft, not open two.
        with self.svc.redis.lock(gathered.lock_name, timeout=60, blocking_timeout=30):
            record = gathered.record()
            current = self._current(record)
            if current is None:
                gathered.restart()
            entries = gathered.add(group, entry)
            announcement = None
            if current is not None:
                try:
                    announcement = self.svc.announcements.amend(
                        current.id, self._draft(rule, entries), AUTHOR, sanitise=True
                    )
                except (Conflict, Forbidden):  # decided meanwhile: the next draft lists these
                    gathered.restart()
                    entries = gathered.add(group, entry)
            if announcement is None:
                announcement = self.svc.announcements.create(
                    {**self._draft(rule, entries), "incident_id": self._incident(record)},
                    AUTHOR,
                    sanitise=True,
                )
            gathered.save(announcement.id, announcement.incident_id)
        metrics.count(self.svc.redis, "alerts_gathered", event.status)
        if event.status == "firing":  # repeats of this group now belong to the draft's incident
            state.update(
                incident_id=announcement.incident_id,
                gathered=rule_id(rule),
                opened_at=str(time.time()),
                resolved_at="",
            )
        else:  # resolved: if it fires again, it counts as a new incident again
            state.update(incident_id="", gathered="", resolved_at="")
        return {
            "outcome": f"gathered: one draft for a person lists {len(entries)} alert(s)",
            "incident_id": announcement.incident_id,
            "announcement_id": announcement.id,
            "state": announcement.state,
            "channels": announcement.channels,
            "gathered": len(entries),
        }

    def _current(self, record: dict[str, str]) -> Announcement | None:
        """The rule's gathering draft while it still waits for a person."""
        if not record.get("announcement_id"):
            return None
        try:
            current = self.svc.announcements.get(record["announcement_id"])
        except NotFound:
            return None
        return current if current.state == PENDING else None

    def _incident(self, record: dict[str, str]) -> str | None:
        """The incident of a flood still going on (its last draft was decided), else a new one."""
        last = float(record.get("last_at") or 0)
        if record.get("incident_id") and time.time() - last <= self.monitoring.new_incidents_window:
            return record["incident_id"]
        return None

    def _draft(self, rule: MonitoringRule, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """The draft's text: how many alerts, which, and why they wait for a person."""
        plan = self.svc.plan
        seen = [e["severity"] for e in entries if e["severity"] in SEVERITIES]
        severity = rule.severity or (max(seen, key=SEVERITIES.index) if seen else "major")
        lines = [
            f"- {e['status']} · {e['title']} · since "
            f"{format_value(e.get('started') or e['at'], plan.default_locale, plan.timezone)}"
            f" · {e['source']}"
            for e in entries[:LISTED]
        ]
        if len(entries) > LISTED:
            lines.append(f"… and {len(entries) - LISTED} more.")
        firing = sum(e["status"] == "firing" for e in entries)
        body = (
            f"Monitoring sent {_alerts(len(entries))} for {self.monitoring.describe(rule)}, "
            f"beyond the {self.monitoring.limit_for(rule)} new incidents a rule may open by "
            f"itself in {_span(self.monitoring.new_incidents_window)}: {firing} still firing, "
            f"{len(entries) - firing} resolved. Nothing about them was sent to customers: a "
            "person decides what to say.\n\nAlerts, oldest first:\n" + "\n".join(lines)
        )
        return {
            "title": f"Several alerts ({len(entries)}) from monitoring",
            "body": body,
            "severity": severity,
            "status": "investigating",
            "audiences": list(rule.audiences),
            "channels": list(rule.channels or plan.channels_by_severity.get(severity, ())),
            "translations": {},
        }
