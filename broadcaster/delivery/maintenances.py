"""Scheduled maintenance, driven: announce it, remind, start, end — and extend, end early, cancel.

Every transition is an announcement in the maintenance's incident, published through the
announcement service (the one way in). The first one, "scheduled", goes through approval
like any announcement. Once a person approved it, the later automatic transitions
(reminders, in progress, completed) are published at once (``preapproved``, as holding
statements are): the plan of the maintenance was approved. They are RQ jobs scheduled
with ``enqueue_at`` on the promises queue, each carrying the maintenance's id and version;
a job whose version is no longer the maintenance's (it was extended, ended early or
cancelled since) does nothing. A person's change publishes its own announcement, in the
open, is audited, and schedules the jobs of the new plan.

In progress, the maintenance sets its components ``under_maintenance`` and shows on the
banner; completed (or cancelled) closes the incident, which returns them to operational.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from redis.client import Pipeline

from broadcaster.delivery import queues
from broadcaster.domain import audit, maintenances
from broadcaster.domain.errors import Conflict, Forbidden, Invalid, NotFound
from broadcaster.domain.maintenances import Maintenance
from broadcaster.domain.principals import Principal
from broadcaster.rendering.maintenance_texts import texts
from broadcaster.services import Services, services
from channels.base import TransientDeliveryError

log = logging.getLogger(__name__)

# Who publishes the automatic transitions: the schedule a person approved.
SCHEDULE = Principal(name="maintenance-schedule", role="approver")
EARLY_TOLERANCE = 1.0  # seconds: RQ's scheduler rounds to the second


def create(
    svc: Services, data: dict[str, Any], principal: Principal, ip: str | None = None
) -> tuple[Maintenance, Any]:
    """Plan a maintenance and announce it (or submit the announcement for approval).

    The record and its jobs are stored before the announcement: a crash in between leaves
    a record whose jobs find no announcement and, after their retries, fail having
    published nothing — never a public announcement without its schedule. Raises Invalid
    (422, by field) before anything is stored.
    """
    errors = maintenances.problems(data, svc.plan)
    if errors:
        raise Invalid(errors)
    severity = data["severity"]
    channels = list(data.get("channels") or svc.plan.channels_by_severity.get(severity, ()))
    planned = maintenances.new(data, channels, principal.name)
    first = _announcement(svc, planned, "scheduled")
    svc.announcements.draft(first, principal)  # the texts and the plan's rules: 422 now
    with svc.redis.pipeline(transaction=True) as pipe:
        pipe.multi()
        maintenances.save(pipe, planned)
        _schedule(svc, pipe, planned)
        pipe.execute()
    try:
        announcement = svc.announcements.create(first, principal, ip=ip)
    except Exception:
        _forget(svc, planned)
        raise
    stored = _with(planned, incident_id=announcement.incident_id, announcement_id=announcement.id)
    with svc.redis.pipeline(transaction=True) as pipe:
        pipe.multi()
        maintenances.save(pipe, stored)
        _audit(pipe, stored, principal.name, "maintenance.created", ip)
        pipe.execute()
    return stored, announcement


def extend(
    svc: Services, maintenance_id: str, ends_at: float, principal: Principal, ip: str | None = None
) -> tuple[Maintenance, Any]:
    """Move the end later, and say so."""

    def change(current: Maintenance) -> tuple[Maintenance, str, str | None]:
        problem = maintenances.ends_problem(current.starts_at, ends_at)
        if not problem and ends_at <= current.ends_at:
            problem = "must lie after the planned end (to end it sooner, complete it)"
        if not problem and ends_at <= time.time():
            problem = "must lie in the future"
        if problem:
            raise Invalid({"ends_at": [problem]})
        return maintenances.changed(current, ends_at=float(ends_at)), "extended", None

    return _change(svc, maintenance_id, principal, ip, "maintenance.extended", change)


def complete(
    svc: Services, maintenance_id: str, principal: Principal, ip: str | None = None
) -> tuple[Maintenance, Any]:
    """End a maintenance in progress before its planned end, and say so."""

    def change(current: Maintenance) -> tuple[Maintenance, str, str | None]:
        if current.state != "in_progress":
            raise Conflict("the maintenance has not started: cancel it instead")
        done = maintenances.changed(current, state="completed", ended_at=time.time())
        return done, "ended_early", None

    return _change(svc, maintenance_id, principal, ip, "maintenance.ended_early", change)


def cancel(
    svc: Services, maintenance_id: str, reason: Any, principal: Principal, ip: str | None = None
) -> tuple[Maintenance, Any]:
    """Call a maintenance off (before or during it), with the reason, in the open."""
    maintenances.invalid_reason(reason)

    def change(current: Maintenance) -> tuple[Maintenance, str, str | None]:
        off = maintenances.changed(
            current, state="cancelled", ended_at=time.time(), reason=reason.strip()
        )
        return off, "cancelled", reason.strip()

    return _change(svc, maintenance_id, principal, ip, "maintenance.cancelled", change)


def _change(
    svc: Services,
    maintenance_id: str,
    principal: Principal,
    ip: str | None,
    action: str,
    change: Any,
) -> tuple[Maintenance, Any]:
    # Changing an approved plan is publishing: who may publish may change it, at once.
    if not principal.may("publish"):
        raise Forbidden(f"role {principal.role!r} may not change a maintenance")
    maintenances.get(svc.redis, maintenance_id)  # 404 before anything else
    with maintenances.changing(svc.redis, maintenance_id):
        current = maintenances.get(svc.redis, maintenance_id)
        if not current.open:
            raise Conflict(f"the maintenance is {current.state}")
        if not _announced(svc, current):
            raise Conflict(
                "the maintenance's announcement is not published: approve or reject it first"
            )
        updated, kind, reason = change(current)
        announcement = _publish(svc, updated, kind, principal, ip, reason)
        with svc.redis.pipeline(transaction=True) as pipe:
            pipe.multi()
            maintenances.save(pipe, updated)
            _schedule(svc, pipe, updated)
            _audit(
                pipe,
                updated,
                principal.name,
                action,
                ip,
                announcement_id=announcement.id,
                ends_at=updated.ends_at,
                **({"reason": reason} if reason else {}),
            )
            pipe.execute()
    queues.unschedule(svc.redis, _job_ids(current))
    return updated, announcement


def transition_job(
    maintenance_id: str, kind: str, version: int, minutes: float | None = None
) -> str:
    """A reminder, the start or the end of a maintenance, when its time comes.

    Does nothing when the plan changed since it was scheduled (``version``), when the
    maintenance is no longer where this transition applies, or when its announcement was
    never approved. Returns what it did.
    """
    svc = services()
    try:
        maintenances.get(svc.redis, maintenance_id)
    except NotFound:
        return "gone"
    with maintenances.changing(svc.redis, maintenance_id):
        current = maintenances.get(svc.redis, maintenance_id)
        if current.version != version:
            return f"stale: planned for version {version}, now {current.version}"
        if not current.announcement_id:  # created a moment ago: its announcement comes next
            raise TransientDeliveryError(f"maintenance {maintenance_id} has no announcement yet")
        due = _due(current, kind, minutes)
        if time.time() < due - EARLY_TOLERANCE:  # a scheduler whose clock runs ahead
            raise TransientDeliveryError(f"maintenance {maintenance_id} {kind} is not due yet")
        if not _announced(svc, current):
            first = current.announcement_id and svc.announcements.get(current.announcement_id)
            if first and first.state == "rejected":  # the plan itself was turned down
                off = maintenances.changed(current, state="cancelled", reason=first.reason)
                maintenances.save(svc.redis, off)
                return "cancelled: its announcement was rejected"
            log.warning("maintenance %s: %s skipped, not approved", maintenance_id, kind)
            return "skipped: its announcement is not published"
        # Late (no worker was up): a reminder after the start reminds of nothing, and a
        # start after the end would flash "in progress" just before "completed".
        late = time.time() >= (current.starts_at if kind == "reminder" else current.ends_at)
        if kind != "complete" and late:
            return f"nothing: {kind} too late"
        if kind == "reminder":
            if current.state != "scheduled" or minutes in current.reminded:
                return f"nothing: {current.state}"
            updated = _with(current, reminded=[*current.reminded, minutes])
            announcement = _publish(svc, current, "reminder", SCHEDULE, None)
        elif kind == "start":
            if current.state != "scheduled":
                return f"nothing: {current.state}"
            updated = _with(current, state="in_progress", started_at=time.time())
            announcement = _publish(svc, updated, "in_progress", SCHEDULE, None)
        else:
            if not current.open:
                return f"nothing: {current.state}"
            updated = _with(current, state="completed", ended_at=time.time())
            announcement = _publish(svc, updated, "completed", SCHEDULE, None)
        maintenances.save(svc.redis, updated)
    return f"{kind}: {announcement.id}"


def _due(maintenance: Maintenance, kind: str, minutes: float | None) -> float:
    if kind == "reminder":
        return maintenance.starts_at - float(minutes or 0) * 60
    return maintenance.starts_at if kind == "start" else maintenance.ends_at


def _jobs(maintenance: Maintenance) -> list[tuple[str, float, float | None]]:
    """(kind, due, minutes) of the transitions still ahead of ``maintenance``."""
    if not maintenance.open:
        return []
    found: list[tuple[str, float, float | None]] = []
    if maintenance.state == "scheduled":
        now = time.time()
        for minutes in maintenance.reminders:
            due = _due(maintenance, "reminder", minutes)
            if minutes not in maintenance.reminded and due > now:
                found.append(("reminder", due, minutes))
        found.append(("start", maintenance.starts_at, None))
    found.append(("complete", maintenance.ends_at, None))
    return found


def _job_ids(maintenance: Maintenance) -> list[str]:
    return [
        queues.maintenance_job_id(maintenance.id, kind, maintenance.version, minutes)
        for kind, _, minutes in _jobs(maintenance)
    ]


def _schedule(svc: Services, pipe: Pipeline, maintenance: Maintenance) -> None:
    for kind, due, minutes in _jobs(maintenance):
        queues.enqueue_transition(
            svc.redis, maintenance.id, kind, maintenance.version, due, minutes, pipeline=pipe
        )


def _forget(svc: Services, maintenance: Maintenance) -> None:
    """The announcement was refused after the record was stored: drop both record and jobs."""
    with svc.redis.pipeline(transaction=True) as pipe:
        pipe.delete(maintenances.key_of(maintenance.id))
        pipe.zrem(maintenances.INDEX_KEY, maintenance.id)
        pipe.execute()
    queues.unschedule(svc.redis, _job_ids(maintenance))


def _announced(svc: Services, maintenance: Maintenance) -> bool:
    """Whether the maintenance's first announcement is published (approved)."""
    if not maintenance.announcement_id:
        return False
    return svc.announcements.get(maintenance.announcement_id).published


def _announcement(
    svc: Services, maintenance: Maintenance, kind: str, reason: str | None = None
) -> dict[str, Any]:
    """The announcement request of transition ``kind``."""
    words = texts(kind, maintenance, svc.plan, reason)
    channels = list(maintenance.channels)
    started = maintenance.started_at is not None or words["status"] == "in_progress"
    if started and "banner" not in channels:
        channels.append("banner")  # while it runs, and its all-clear, the website shows it
    components = (
        dict.fromkeys(maintenance.components, "under_maintenance")
        if words["status"] == "in_progress"
        else {}
    )
    return {
        "title": words["title"],
        "body": words["body"],
        "translations": words["translations"],
        "status": words["status"],
        "severity": maintenance.severity,
        "audiences": list(maintenance.audiences),
        "channels": channels,
        "components": components,
        **({"incident_id": maintenance.incident_id} if maintenance.incident_id else {}),
    }


def _publish(
    svc: Services,
    maintenance: Maintenance,
    kind: str,
    author: Principal,
    ip: str | None,
    reason: str | None = None,
) -> Any:
    """Publish transition ``kind`` in the maintenance's incident (approved with the plan)."""
    data = _announcement(svc, maintenance, kind, reason)
    return svc.announcements.follow_up(
        maintenance.incident_id or "", data, author, preapproved=True, ip=ip
    )


def _with(maintenance: Maintenance, **changes: Any) -> Maintenance:
    """The record with ``changes`` and the same version (its jobs still apply)."""
    return dataclasses.replace(maintenance, **changes)


def _audit(
    pipe: Pipeline,
    maintenance: Maintenance,
    actor: str,
    action: str,
    ip: str | None,
    **details: Any,
) -> None:
    details.setdefault("announcement_id", maintenance.announcement_id)
    audit.record(
        pipe,
        actor,
        action,
        ip=ip,
        incident_id=maintenance.incident_id,
        maintenance_id=maintenance.id,
        title=maintenance.title,
        starts_at=maintenance.starts_at,
        **details,
    )
