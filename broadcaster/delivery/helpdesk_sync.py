"""The brief as saved replies: one macro (Zendesk) / canned response (Freshdesk) per incident
and language, created once and updated in place on every published update; on resolution it
becomes the all-clear reply and is deactivated ``HELPDESK_DEACTIVATE_AFTER`` seconds later.

Agents then answer with the same words as the status page, without copying anything. The
reply's id is kept in Redis (``bc:helpdesk:<desk>:<incident>``: locale → id). Helpdesks
have no idempotency keys for these, so a create is marked before it is sent: a retry that
finds the mark (the worker died, or the answer was lost) looks the reply up by its title
before making one, and never makes a second.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from broadcaster.delivery import queues
from broadcaster.delivery.helpdesk_gate import Gated
from broadcaster.domain import visibility
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import closes
from broadcaster.infra import metrics
from broadcaster.rendering.brief import brief
from broadcaster.rendering.i18n import gettext_for
from broadcaster.services import Services, services
from channels.base import DeliveryError, TransientDeliveryError
from channels.helpdesks import Helpdesk

log = logging.getLogger(__name__)

CREATING = "creating"
ENDED = "ended"
LOCK_SECONDS = 45  # longer than a sync takes; a killed worker's lock frees itself soon
STATE_TTL = 90 * 24 * 3600


def _ids_key(desk: str, incident_id: str) -> str:
    return f"bc:helpdesk:{desk}:{incident_id}"


def _status_key(incident_id: str) -> str:
    return f"bc:helpdesk:status:{incident_id}"


def after_publish(svc: Services, announcement: Announcement) -> None:
    """Queue the sync of a customer-facing announcement's incident (helpdesks configured)."""
    # Not a drill's either: agents answer real customers with these replies.
    if svc.helpdesks and not visibility.stays_inside(svc.plan, announcement):
        queues.enqueue_helpdesk(svc.redis, "sync_job", announcement.incident_id)


def status(svc: Services, incident_id: str) -> dict[str, Any]:
    """Per helpdesk: the reply ids per locale and the last outcome ("ok" or the error)."""
    outcomes = {
        k.decode(): v.decode() for k, v in svc.redis.hgetall(_status_key(incident_id)).items()
    }
    return {
        name: {
            "replies": {
                k.decode(): v.decode()
                for k, v in svc.redis.hgetall(_ids_key(name, incident_id)).items()
            },
            "outcome": outcomes.get(name),
        }
        for name in svc.helpdesks
    }


def title_of(incident: dict[str, Any], locale: str) -> str:
    """The saved reply's title: stable for the incident, so it can be found again."""
    return f"Incident: {incident.get('title', incident['id'])} — reply ({locale})"


def text_of(found: dict[str, Any], locale: str) -> str:
    """The reply to paste in ``locale``, then where to send customers for their need."""
    _ = gettext_for(locale)
    reply = next(r["text"] for r in found["replies"] if r["locale"] == locale)
    lines = [reply, "", _("How to reach us for your need") + ":"]
    for group in found["routes"]:
        for route in group["routes"]:
            hours = f" ({route['hours']})" if route["hours"] else ""
            lines.append(f"- {route['need']}: {route['channel']}, {route['contact']}{hours}")
    return "\n".join(lines).rstrip(":\n")


def sync_job(incident_id: str, attempt: int = 1) -> str:
    """Create or update the incident's saved reply in every helpdesk and language."""
    svc = services()
    lock = f"bc:lock:helpdesk:{incident_id}"
    if not svc.redis.set(lock, "1", nx=True, ex=LOCK_SECONDS):
        queues.enqueue_helpdesk(svc.redis, "sync_job", incident_id, attempt, delay=2)
        return "waiting for the sync in progress"
    try:
        incident = svc.announcements.get_incident(incident_id)
        outcomes = [
            _each(svc, name, desk, incident, attempt, _sync_desk)
            for name, desk in svc.helpdesks.items()
        ]
    finally:
        svc.redis.delete(lock)
    if closes(incident.get("status")):  # resolved, or a maintenance over
        after = float(svc.config.get("HELPDESK_DEACTIVATE_AFTER", 24 * 3600))
        queues.enqueue_helpdesk(svc.redis, "deactivate_job", incident_id, delay=after)
    return "; ".join(outcomes)


def deactivate_job(incident_id: str, attempt: int = 1) -> str:
    """The incident is over (and still resolved): its saved replies leave the agents' lists."""
    svc = services()
    incident = svc.announcements.get_incident(incident_id)
    if not closes(incident.get("status")):
        return "skipped: the incident reopened"
    return "; ".join(
        _each(svc, name, desk, incident, attempt, _deactivate_desk, job="deactivate_job")
        for name, desk in svc.helpdesks.items()
    )


def _each(
    svc: Services,
    name: str,
    desk: Helpdesk,
    incident: dict[str, Any],
    attempt: int,
    work: Any,
    job: str = "sync_job",
) -> str:
    """Run ``work`` for one helpdesk; retry it later when the helpdesk asks; record how."""
    try:
        work(svc, name, Gated(svc, name, desk), incident)
    except TransientDeliveryError as exc:
        outcome = "retry"
        if attempt < int(svc.config["MAX_ATTEMPTS"]):
            delay = queues.retry_delay(svc.config, attempt, exc.retry_after)
            queues.enqueue_helpdesk(svc.redis, job, incident["id"], attempt + 1, delay)
        else:
            outcome = "failed"
        _record(svc, incident["id"], name, f"{outcome}: {exc.reason}")
        metrics.count(svc.redis, "helpdesk_syncs", name, outcome)
        return f"{name}: {outcome}"
    except DeliveryError as exc:
        log.warning("helpdesk %s, incident %s: %s", name, incident["id"], exc.reason)
        _record(svc, incident["id"], name, f"failed: {exc.reason}")
        metrics.count(svc.redis, "helpdesk_syncs", name, "failed")
        return f"{name}: failed"
    _record(svc, incident["id"], name, "ok")
    metrics.count(svc.redis, "helpdesk_syncs", name, "ok")
    return f"{name}: ok"


def _record(svc: Services, incident_id: str, name: str, outcome: str) -> None:
    svc.redis.hset(_status_key(incident_id), name, f"{outcome} ({time.strftime('%H:%M:%S')})")
    svc.redis.expire(_status_key(incident_id), STATE_TTL)


def _sync_desk(svc: Services, name: str, desk: Helpdesk, incident: dict[str, Any]) -> None:
    key = _ids_key(name, incident["id"])
    for locale in svc.plan.locales:
        found = brief(svc, incident["id"], locale)
        if found is None:
            return  # nothing published (any more): nothing to say
        title, text = title_of(incident, locale), text_of(found, locale)
        current = svc.redis.hget(key, locale)
        current_id = current.decode() if current else None
        if current_id == ENDED:
            continue
        if current_id in (None, CREATING):
            # A mark without an id: an earlier try may have made it before dying.
            made = desk.find(title) if current_id == CREATING else None
            if made is None:
                svc.redis.hset(key, locale, CREATING)
                svc.redis.expire(key, STATE_TTL)
                made = desk.create(title, text)
            else:
                desk.update(made, title, text)
            svc.redis.hset(key, locale, made)
        else:
            desk.update(current_id, title, text)


def _deactivate_desk(svc: Services, name: str, desk: Helpdesk, incident: dict[str, Any]) -> None:
    key = _ids_key(name, incident["id"])
    for raw_locale, raw_id in svc.redis.hgetall(key).items():
        locale, reply_id = raw_locale.decode(), raw_id.decode()
        if reply_id in (CREATING, ENDED):
            continue
        desk.deactivate(reply_id, title_of(incident, locale))
        svc.redis.hset(key, locale, ENDED)
