"""Run a drill: its scenario's alert enters through the same monitoring path as a real one.

The alert goes to ``alerts.Processor`` like one from Alertmanager: the plan's rules pick the
audiences, the holding statement goes out (or a draft waits for approval), staff are told
first. Only its group key (``drills.alert_key``) and ``drill_id`` differ, so the incident it
opens is an exercise. The API, the CLI, the admin pages and the ``resolve_after_minutes``
job all run drills through here.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from broadcaster.delivery.queues import PLAN_QUEUE, queue
from broadcaster.domain import drills
from broadcaster.domain.drill_plan import Scenario, labels
from broadcaster.domain.errors import Conflict, Forbidden, Invalid
from broadcaster.domain.principals import Principal
from broadcaster.services import Services, services
from broadcaster.web.hooks.alerts import (
    Alert,
    MonitorEvent,
    Processor,
    _fingerprint,
    record_event,
)

log = logging.getLogger(__name__)

AUTHOR = "monitoring:drill"  # who monitoring's announcements of a drill are by
RESOLVE_JOB = "broadcaster.web.hooks.drill_runner.resolve_job"


def scenario(svc: Services, name: Any) -> Scenario:
    """The plan's scenario ``name``; Invalid (naming the known ones) if there is none."""
    plan = svc.plan.drills
    if plan is None:
        raise Invalid({"scenario": ["the plan has no [drills] table: no scenarios to run"]})
    found = plan.scenarios.get(name) if isinstance(name, str) else None
    if found is None:
        known = ", ".join(plan.scenarios) or "none"
        raise Invalid({"scenario": [f"unknown scenario {name!r} (known: {known})"]})
    return found


def _event(found: Scenario, drill_id: str, status: str) -> MonitorEvent:
    alert = found.alert
    tags = labels(alert)
    annotations = {"summary": alert.title}
    return MonitorEvent(
        source="drill",
        group_key=drills.alert_key(found, drill_id),
        status=status,
        labels=tags,
        annotations=annotations,
        alerts=[Alert(_fingerprint(tags), status, tags, annotations, time.time())],
        title=alert.title,
        drill_id=drill_id,
    )


def start(svc: Services, name: Any, principal: Principal, ip: str | None = None) -> dict[str, Any]:
    """Start a drill of scenario ``name``: its alert fires now; returns the drill."""
    found = scenario(svc, name)
    store = drills.DrillStore(svc.redis)
    drill = store.start(found, principal.name, ip)
    event = _event(found, drill["id"], "firing")
    result = Processor(svc).handle(event)
    # Listed with the real hook events (Monitoring page, GET /api/v1/hooks/events).
    raw = {"drill_id": drill["id"], "scenario": found.name, "key": event.group_key}
    record_event(svc, "drill", json.dumps({**raw, "labels": event.labels}), result)
    if not result.get("incident_id"):  # the plan check makes this rare: say it plainly
        raise Conflict(f"the scenario's alert opened no incident: {result.get('outcome')}")
    drill = store.opened(drill["id"], result["incident_id"])
    if found.resolve_after_minutes:
        when = datetime.fromtimestamp(time.time() + found.resolve_after_minutes * 60, tz=UTC)
        queue(svc.redis, PLAN_QUEUE).enqueue_at(
            when, RESOLVE_JOB, drill["id"], job_id=_resolve_job_id(drill["id"])
        )
    return {
        **drill,
        "outcome": result.get("outcome"),
        "announcement_id": result.get("announcement_id"),
    }


def _resolve_job_id(drill_id: str) -> str:
    return f"drill-resolve-{drill_id}"


def _cancel_resolve(svc: Services, drill_id: str) -> None:
    """An ended drill's scheduled resolve has nothing left to do: take it off the schedule."""
    try:
        job = Job.fetch(_resolve_job_id(drill_id), connection=svc.redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return
    job.delete()


def resolve(svc: Services, drill_id: str) -> dict[str, Any]:
    """The scenario's alert resolves, as monitoring would say it (all-clear or a draft)."""
    drill = drills.DrillStore(svc.redis).get(drill_id)
    found = scenario(svc, drill["scenario"])
    return Processor(svc).handle(_event(found, drill_id, "resolved"))


def resolve_job(drill_id: str) -> str:
    """RQ job (``resolve_after_minutes``): resolve the drill's alert unless it has ended."""
    svc = services()
    drill = drills.DrillStore(svc.redis).get(drill_id)
    if drill["ended_at"] is not None:
        return "drill already ended"
    return str(resolve(svc, drill_id).get("outcome"))


def end(
    svc: Services, drill_id: str, principal: Principal, ip: str | None = None
) -> dict[str, Any]:
    """End a drill: its alert resolves and its incident with it.

    Where the plan has no all-clear for the rule, monitoring leaves a resolution draft for a
    person: the one ending the drill approves it (four eyes hold: monitoring wrote it).
    """
    store = drills.DrillStore(svc.redis)
    drill = store.end(drill_id, principal.name, ip)
    _cancel_resolve(svc, drill_id)
    if not drill["incident_id"]:
        return {**drill, "outcome": "no incident to resolve"}
    result = resolve(svc, drill_id)
    outcome = str(result.get("outcome"))
    # Monitoring's resolution draft: this one, or one the scheduled resolve left earlier.
    waiting = [
        a
        for a in svc.announcements.timeline(drill["incident_id"])
        if a.state == "pending_approval"
        and a.status == "resolved"
        and a.author == "monitoring:drill"
    ]
    if waiting:
        try:
            svc.announcements.approve(waiting[-1].id, principal, ip)
        except (Forbidden, Conflict) as exc:
            # The drill has ended all the same; the resolution waits for the team.
            log.info("drill %s: resolution left for approval: %s", drill_id, exc)
            outcome += f"; the resolution waits for approval ({exc})"
        else:
            outcome += "; resolution approved"
    chosen = waiting[-1].id if waiting else result.get("announcement_id")
    return {**drill, "outcome": outcome, "announcement_id": chosen}
