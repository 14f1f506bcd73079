"""Tell the approvers that an announcement waits: an email to each, a message in staff chat.

The announcement service calls ``services.on_pending`` after a new pending announcement is
stored; that queues ``notice_job`` on the ``public`` queue. The job emails every user who
may approve it — the approve permission, and a second person by the four-eyes rule (never
the author, nor an account the author made) — through the email channel, and posts a
Slack-format message to each internal Slack-format webhook target (staff chat). JSON
targets get nothing: their receivers read every post as a published announcement.

A flood of drafts (a script, a monitoring storm) must not become a flood of email: the
first pending announcement is told at once and opens a window of
``APPROVAL_NOTICE_WINDOW`` seconds; what starts waiting within it is gathered into one
digest at its end (``digest_job``), newest first, which opens the next window.

Each place is noted once it is done, so a retried job never notifies twice; transient
failures are tried again with the delivery backoff, up to ``MAX_ATTEMPTS``. Nothing here
can touch the submission: it is stored before this job exists.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from broadcaster.delivery import queues
from broadcaster.delivery.publishing import post_in_thread
from broadcaster.domain import four_eyes
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import NotFound
from broadcaster.domain.users import all_users
from broadcaster.infra import metrics
from broadcaster.rendering import approval_notice, exercise
from broadcaster.services import Services, services
from channels.base import DeliveryError, Outgoing, PublicPost, TransientDeliveryError
from channels.slack_threads import PLACE as SLACK_PLACE
from channels.webhook import WebhookTarget

log = logging.getLogger(__name__)

DONE_TTL = 7 * 24 * 3600  # as long as RQ keeps a failed job: retries stay deduplicated
WINDOW_KEY = "bc:notice:window"  # exists while a window is open
GATHERED_KEY = "bc:notice:gathered"  # ids that started waiting within it
DIGEST_DUE_KEY = "bc:notice:digest_due"  # a digest job is scheduled for the window's end

APPROVAL_EVENT = "approval.waiting"  # its card's button opens the Approvals page
Again = Callable[[int, float], None]  # (next attempt, delay): queue the same notice again


def _done_key(notice_id: str) -> str:
    return f"bc:notice:{notice_id}"


def chat_targets(svc: Services) -> list[WebhookTarget]:
    """The plan's staff-chat targets: internal, in Slack or Teams format."""
    return [t for t in svc.plan.webhooks if t.internal and t.format in ("slack", "teams")]


def _pending(svc: Services, announcement_id: str) -> Announcement | None:
    try:
        announcement = svc.announcements.get(announcement_id)
    except NotFound:
        return None
    return announcement if announcement.state == "pending_approval" else None


def _open_window(svc: Services) -> bool:
    """Open the quiet window; False when one is open already."""
    seconds = float(svc.config.get("APPROVAL_NOTICE_WINDOW", 60))
    if seconds <= 0:
        return True
    return bool(svc.redis.set(WINDOW_KEY, "1", nx=True, px=int(seconds * 1000)))


def notice_job(announcement_id: str, attempt: int = 1) -> str:
    """Notify the approvers of one pending announcement (or gather it); the outcome."""
    svc = services()
    announcement = _pending(svc, announcement_id)
    if announcement is None:
        return "skipped: decided (or gone) before anyone was told"
    if attempt == 1 and not _open_window(svc):
        svc.redis.sadd(GATHERED_KEY, announcement_id)
        # One digest per window, when it ends; the flag outlives a lost job by little.
        left = max(0.0, svc.redis.pttl(WINDOW_KEY) / 1000)
        if svc.redis.set(DIGEST_DUE_KEY, "1", nx=True, ex=int(left) + 300):
            queues.enqueue_digest(svc.redis, None, "", 1, left)
        return "gathered for the digest"

    def again(next_attempt: int, delay: float) -> None:
        queues.enqueue_notice(svc.redis, announcement_id, next_attempt, delay)

    return _notify(svc, announcement_id, [announcement], attempt, again)


def digest_job(ids: list[str] | None = None, digest_id: str = "", attempt: int = 1) -> str:
    """At a window's end: one notice of everything gathered that still waits."""
    svc = services()
    if ids is None:
        with svc.redis.pipeline(transaction=True) as pipe:
            pipe.smembers(GATHERED_KEY)
            pipe.delete(GATHERED_KEY, DIGEST_DUE_KEY)
            gathered, _ = pipe.execute()
        ids = sorted(member.decode() for member in gathered)
        digest_id = "digest_" + secrets.token_hex(8)
    waiting = [a for a in (_pending(svc, i) for i in ids) if a]
    if not waiting:
        return "skipped: nothing gathered waits any more"
    if attempt == 1:
        _open_window(svc)  # what comes next waits for the next digest
    waiting.sort(key=lambda a: a.created_at, reverse=True)

    def again(next_attempt: int, delay: float) -> None:
        queues.enqueue_digest(svc.redis, ids, digest_id, next_attempt, delay)

    return _notify(svc, digest_id, waiting, attempt, again)


def _notify(
    svc: Services, notice_id: str, waiting: list[Announcement], attempt: int, again: Again
) -> str:
    done = {member.decode() for member in svc.redis.smembers(_done_key(notice_id))}
    later: dict[str, float] = {}  # place → seconds the provider asked us to wait
    sent = _email(svc, notice_id, waiting, done, later)
    sent += _chat(svc, notice_id, waiting, done, later)
    sent += _slack_thread(svc, notice_id, waiting, done, later)
    if not later:
        return f"sent {sent}"
    if attempt < int(svc.config["MAX_ATTEMPTS"]):
        delay = queues.retry_delay(svc.config, attempt, max(later.values()))
        again(attempt + 1, delay)
        return f"sent {sent}, {len(later)} again in {delay:.0f}s"
    log.warning("approval notice %s: gave up on %s", notice_id, ", ".join(sorted(later)))
    for place in later:
        _note(svc, notice_id, place, "failed")
    return f"sent {sent}, gave up on {len(later)}"


def _note(svc: Services, notice_id: str, place: str, outcome: str) -> None:
    """Count the outcome for ``place`` ("email:…", "webhook:…"); done unless transient."""
    if outcome != "transient":
        with svc.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(_done_key(notice_id), place)
            pipe.expire(_done_key(notice_id), DONE_TTL)
            pipe.execute()
    metrics.count(svc.redis, "approval_notices", place.partition(":")[0], outcome)


def _email(
    svc: Services,
    notice_id: str,
    waiting: list[Announcement],
    done: set[str],
    later: dict[str, float],
) -> int:
    # Each person hears of what they may approve: never their own, never four-eyes refusals.
    batches: dict[tuple[str, ...], list[Outgoing]] = {}
    contents: dict[tuple[str, ...], dict[str, str]] = {}
    for user in all_users(svc.redis):
        who = user.principal
        if not who.may("approve") or f"email:{user.email}" in done:
            continue
        theirs = [a for a in waiting if four_eyes.refusal(a, who, "approve") is None]
        if not theirs:
            continue
        key = tuple(a.id for a in theirs)
        if key not in contents:
            contents[key] = approval_notice.email(svc, theirs)
            if all(a.exercise for a in theirs):  # a drill's draft: the team knows at a glance
                contents[key] = exercise.marked(contents[key], svc.plan.default_locale)
        # The subscriber id names no subscriber (SendGrid's events for it are "unmatched"),
        # and the content carries no announcement id: no receipt can touch the ledger.
        outgoing = Outgoing(f"approver:{user.email}", user.email, contents[key])
        batches.setdefault(key, []).append(outgoing)
    sent = 0
    for batch in batches.values():
        for result in svc.channels["email"].send(batch):
            place = "email:" + result.subscriber_id.removeprefix("approver:")
            outcome = "transient" if result.outcome == "retry" else result.outcome
            _note(svc, notice_id, place, outcome)
            if outcome == "sent":
                sent += 1
            elif outcome == "transient":
                later[place] = result.retry_after or 0.0
            else:
                log.warning("approval notice %s failed: %s", notice_id, result.error)
    return sent


def _marked(text: str, waiting: list[Announcement], locale: str) -> str:
    return exercise.prefixed(text, locale) if all(a.exercise for a in waiting) else text


def _exercise_event(
    event: dict[str, Any], waiting: list[Announcement], svc: Services
) -> dict[str, Any]:
    """The chat event, its title marked when all that waits is a drill's (Slack, Teams)."""
    return {**event, "title": _marked(event["title"], waiting, svc.plan.default_locale)}


def _chat(
    svc: Services,
    notice_id: str,
    waiting: list[Announcement],
    done: set[str],
    later: dict[str, float],
) -> int:
    targets = [t for t in chat_targets(svc) if f"webhook:{t.name}" not in done]
    if not targets:
        return 0
    event = _exercise_event(approval_notice.chat_event(svc, waiting), waiting, svc)
    link = approval_notice.approvals_url(svc, waiting)
    first = waiting[0]
    sent = 0
    for target in targets:
        post = PublicPost(
            first.id,
            first.incident_id,
            f"{event['title']} {link}",
            link,
            svc.plan.default_locale,
            f"{notice_id}:approval:{target.name}",
            event=event,
            event_type=APPROVAL_EVENT,
        )
        place = f"webhook:{target.name}"
        try:
            svc.webhook.deliver(target, post)
        except TransientDeliveryError as exc:
            _note(svc, notice_id, place, "transient")
            later[place] = exc.retry_after or 0.0
        except DeliveryError as exc:
            log.warning("approval notice %s: %s", notice_id, exc.reason)
            _note(svc, notice_id, place, "failed")
        else:
            _note(svc, notice_id, place, "sent")
            sent += 1
    return sent


def _slack_thread(
    svc: Services,
    notice_id: str,
    waiting: list[Announcement],
    done: set[str],
    later: dict[str, float],
) -> int:
    """With a Slack bot: the notice in the incident's thread (several incidents: on its own)."""
    place = SLACK_PLACE
    if not svc.slack.configured or place in done:
        return 0
    event = _exercise_event(approval_notice.chat_event(svc, waiting), waiting, svc)
    text = f"{event['title']}\n{approval_notice.approvals_url(svc, waiting)}"
    incidents = {a.incident_id for a in waiting}
    try:
        if len(incidents) == 1:
            post_in_thread(svc, waiting[0].incident_id, text)
        else:
            svc.slack.post(text)
    except TransientDeliveryError as exc:
        _note(svc, notice_id, place, "transient")
        later[place] = exc.retry_after or 0.0
        return 0
    except DeliveryError as exc:
        log.warning("approval notice %s: %s", notice_id, exc.reason)
        _note(svc, notice_id, place, "failed")
        return 0
    _note(svc, notice_id, place, "sent")
    return 1
