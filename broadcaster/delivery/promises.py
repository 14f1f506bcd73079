"""The reminder job: when a promised update's time passes with no update, tell the team.

Scheduled by the publishing transaction for the promised time (``queues.enqueue_reminder``)
and moved to its queue by RQ's scheduler, which every worker runs. At that time it checks
the promise still stands (no newer update, incident not resolved: ``domain/promises.py``)
and reminds the announcement's author and approver: by email when they have an account,
else through the plan's internal webhook targets (the staff channel), since a token-only
person has no address. Each recipient reached is recorded in Redis as it is reached, so a
retried job reminds nobody twice; the reminder is audited (``promise.overdue``) once.
"""

from __future__ import annotations

import logging
import time

from broadcaster.domain import audit, promises
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.users import get_user
from broadcaster.infra import metrics
from broadcaster.rendering import exercise
from broadcaster.rendering.reminders import overdue_reminder
from broadcaster.services import Services, services
from channels.base import DeliveryError, Outgoing, PublicPost, TransientDeliveryError

log = logging.getLogger(__name__)

EVENT_TYPE = "promise.overdue"  # the webhook "type" of a reminder


def recipients(svc: Services, announcement: Announcement) -> tuple[list[str], list[str]]:
    """(email addresses, internal webhook target names) to remind about ``announcement``.

    The people behind it: its author and whoever approved it. A person without an account
    (a token's name, monitoring) has no address: then the internal targets hear it.
    """
    people = dict.fromkeys(
        p for p in (announcement.author_person, announcement.decided_by_person) if p
    )
    emails: list[str] = []
    unreachable = False
    for person in people:
        user = get_user(svc.redis, person) if "@" in person else None
        if user is None:
            unreachable = True
        elif user.email not in emails:
            emails.append(user.email)
    targets = [t.name for t in svc.plan.webhooks if t.internal] if unreachable else []
    return emails, targets


def remind_job(announcement_id: str) -> str:
    """Remind the team of an overdue promise, unless it was kept; returns the outcome."""
    svc = services()
    store = svc.announcements
    announcement = store.get(announcement_id)
    incident = store.get_incident(announcement.incident_id)
    published = [a for a in store.timeline(announcement.incident_id) if a.published]
    reason = promises.why_not_remind(announcement, incident, published)
    if reason == "not due yet":  # a scheduler whose clock runs ahead: RQ's Retry runs it later
        raise TransientDeliveryError(f"promise of {announcement_id} is not due yet")
    if reason:
        log.info("promise of %s kept: %s", announcement_id, reason)
        return f"kept: {reason}"
    emails, targets = recipients(svc, announcement)
    key = promises.reminded_key(announcement_id)
    done = {m.decode() for m in svc.redis.smembers(key)}
    content = overdue_reminder(announcement, incident, svc.plan.timezone, svc.renderer.public_url)
    if announcement.exercise:  # a drill's promise: the reminder is part of the exercise
        content = {
            **exercise.marked(content, "en"),
            "title": exercise.prefixed(content["title"], "en"),
        }
    failures: list[str] = []
    retry = False
    for email in emails:
        if email in done:
            continue
        outgoing = Outgoing(
            f"staff:{email}",
            email,
            {k: content[k] for k in ("subject", "text", "html")},
        )
        result = svc.channels["email"].send([outgoing])[0]
        if result.outcome == "sent":
            _done(svc, key, email)
        else:
            retry = retry or result.outcome == "retry"
            failures.append(f"{email}: {result.error}")
    for name in targets:
        if f"webhook:{name}" in done:
            continue
        target = next(t for t in svc.plan.webhooks if t.name == name)
        post = PublicPost(
            announcement.id,
            announcement.incident_id,
            f"{content['title']}: {content['body']}",
            content["link"],
            "en",
            f"promise-{announcement.id}-{name}",
            event={
                "announcement_id": announcement.id,
                "incident_id": announcement.incident_id,
                "title": content["title"],
                "body": content["body"],
                "severity": announcement.severity,
                "next_update_at": announcement.next_update_at,
                "compose_url": content["link"],
            },
            event_type=EVENT_TYPE,
        )
        try:
            svc.webhook.deliver(target, post)
        except DeliveryError as exc:
            retry = retry or isinstance(exc, TransientDeliveryError)
            failures.append(f"webhook {name}: {exc.reason}")
        else:
            _done(svc, key, f"webhook:{name}")
    if retry:  # RQ's Retry runs the job again; those done above are not reminded twice
        raise TransientDeliveryError("; ".join(failures))
    reached = sorted({m.decode() for m in svc.redis.smembers(key)})
    # Audited once, however often a retry got here.
    if svc.redis.set(f"{key}:audited", "1", nx=True, ex=promises.REMINDED_TTL):
        audit.record(
            svc.redis,
            "system",
            "promise.overdue",
            incident_id=announcement.incident_id,
            announcement_id=announcement.id,
            title=announcement.title,
            promised=announcement.next_update_at,
            overdue_seconds=round(time.time() - (announcement.next_update_at or 0.0)),
            reminded=reached,
            failed=failures,
        )
        metrics.count(svc.redis, "promises_overdue", "reminded" if reached else "nobody")
    if not reached:
        log.warning("promise of %s is overdue and nobody could be reminded", announcement_id)
    return f"reminded: {', '.join(reached) or 'nobody'}"


def _done(svc: Services, key: str, recipient: str) -> None:
    pipe = svc.redis.pipeline(transaction=True)
    pipe.sadd(key, recipient)
    pipe.expire(key, promises.REMINDED_TTL)
    pipe.execute()
