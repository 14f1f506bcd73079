"""Tell the approvers that an announcement waits: an email to each, a message in staff chat.

The announcement service calls ``services.on_pending`` after a new pending announcement is
stored; that queues ``notice_job`` on the ``public`` queue. The job emails every user who
may approve it — the approve permission, and a second person by the four-eyes rule (never
the author, nor an account the author made) — through the email channel, and posts a
Slack-format message to each internal Slack-format webhook target (staff chat). JSON
targets get nothing: their receivers read every post as a published announcement.

Each place is noted once it is done, so a retried job never notifies twice; transient
failures are tried again with the delivery backoff, up to ``MAX_ATTEMPTS``. Nothing here
can touch the submission: it is stored before this job exists.
"""

from __future__ import annotations

import logging

from broadcaster.delivery import queues
from broadcaster.domain import four_eyes
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import NotFound
from broadcaster.domain.users import User, all_users
from broadcaster.infra import metrics
from broadcaster.rendering import approval_notice
from broadcaster.services import Services, services
from channels.base import DeliveryError, Outgoing, PublicPost, TransientDeliveryError
from channels.webhook import WebhookTarget

log = logging.getLogger(__name__)

DONE_TTL = 7 * 24 * 3600  # as long as RQ keeps a failed job: retries stay deduplicated


def _done_key(announcement_id: str) -> str:
    return f"bc:notice:{announcement_id}"


def approvers(svc: Services, announcement: Announcement) -> list[User]:
    """Every user who may approve ``announcement``: the permission, and a second person."""
    return [
        user
        for user in all_users(svc.redis)
        if user.principal.may("approve")
        and four_eyes.refusal(announcement, user.principal, "approve") is None
    ]


def chat_targets(svc: Services) -> list[WebhookTarget]:
    """The plan's staff-chat targets: internal, Slack format."""
    return [t for t in svc.plan.webhooks if t.internal and t.format == "slack"]


def notice_job(announcement_id: str, attempt: int = 1) -> str:
    """Notify the approvers of one pending announcement; returns the outcome."""
    svc = services()
    try:
        announcement = svc.announcements.get(announcement_id)
    except NotFound:
        return "skipped: no such announcement"
    if announcement.state != "pending_approval":
        return f"skipped: already {announcement.state}"  # decided before anyone was told
    key = _done_key(announcement_id)
    done = {member.decode() for member in svc.redis.smembers(key)}
    later: dict[str, float] = {}  # place → seconds the provider asked us to wait
    sent = _email(svc, announcement, done, later)
    sent += _chat(svc, announcement, done, later)
    if not later:
        return f"sent {sent}"
    if attempt < int(svc.config["MAX_ATTEMPTS"]):
        delay = queues.retry_delay(svc.config, attempt, max(later.values()))
        queues.enqueue_notice(svc.redis, announcement_id, attempt + 1, delay)
        return f"sent {sent}, {len(later)} again in {delay:.0f}s"
    log.warning("approvers of %s: gave up on %s", announcement_id, ", ".join(sorted(later)))
    for place in later:
        _note(svc, announcement_id, place, "failed")
    return f"sent {sent}, gave up on {len(later)}"


def _note(svc: Services, announcement_id: str, place: str, outcome: str) -> None:
    """Count the outcome for ``place`` ("email:…", "webhook:…"); done unless retried."""
    if outcome != "transient":
        with svc.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(_done_key(announcement_id), place)
            pipe.expire(_done_key(announcement_id), DONE_TTL)
            pipe.execute()
    metrics.count(svc.redis, "approval_notices", place.partition(":")[0], outcome)


def _email(
    svc: Services, announcement: Announcement, done: set[str], later: dict[str, float]
) -> int:
    people = [u for u in approvers(svc, announcement) if f"email:{u.email}" not in done]
    if not people:
        return 0
    content = approval_notice.email(svc, announcement)
    # The subscriber id names no subscriber (SendGrid's events for it are "unmatched"), and
    # the content carries no announcement id: no receipt can touch the ledger.
    batch = [Outgoing(f"approver:{u.email}", u.email, content) for u in people]
    sent = 0
    for result in svc.channels["email"].send(batch):
        place = "email:" + result.subscriber_id.removeprefix("approver:")
        _note(
            svc,
            announcement.id,
            place,
            "transient" if result.outcome == "retry" else result.outcome,
        )
        if result.outcome == "sent":
            sent += 1
        elif result.outcome == "retry":
            later[place] = result.retry_after or 0.0
        else:
            log.warning(
                "approval notice of %s to an approver failed: %s", announcement.id, result.error
            )
    return sent


def _chat(
    svc: Services, announcement: Announcement, done: set[str], later: dict[str, float]
) -> int:
    targets = [t for t in chat_targets(svc) if f"webhook:{t.name}" not in done]
    if not targets:
        return 0
    event = approval_notice.chat_event(svc, announcement)
    link = approval_notice.approvals_url(svc, announcement)
    sent = 0
    for target in targets:
        post = PublicPost(
            announcement.id,
            announcement.incident_id,
            f"{event['title']} {link}",
            link,
            svc.plan.default_locale,
            f"{announcement.id}:approval:{target.name}",
            event=event,
        )
        place = f"webhook:{target.name}"
        try:
            svc.webhook.deliver(target, post)
        except TransientDeliveryError as exc:
            _note(svc, announcement.id, place, "transient")
            later[place] = exc.retry_after or 0.0
        except DeliveryError as exc:
            log.warning("approval notice of %s: %s", announcement.id, exc.reason)
            _note(svc, announcement.id, place, "failed")
        else:
            _note(svc, announcement.id, place, "sent")
            sent += 1
    return sent
