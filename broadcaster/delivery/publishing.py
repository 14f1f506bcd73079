"""Public channels: one job per announcement and place (a social account, a webhook target).

A social place is a network's default account (``mastodon``, posting in the default
language) or a ``[social.LOCALE]`` account of the plan (``mastodon:nl``, posting the
announcement's translation, or the default language when it has none). Social posts of
one incident form one thread per place: each post replies to the incident's previous post
there. The thread reference lives in Redis; a short lock per (incident, place) keeps two
quick updates from both replying to the same parent. Rate limits and breakers stay per
provider (``pacing.gate_for``): the accounts of one network share them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from broadcaster.delivery import drill_guard, pacing, queues, staff
from broadcaster.domain import visibility
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.ledger import Ledger
from broadcaster.domain.plan_social import place_locale
from broadcaster.infra import metrics
from broadcaster.rendering import exercise, staff_message
from broadcaster.rendering.brief import announcement_brief, reply
from broadcaster.services import Services, services
from channels.base import (
    DeliveryError,
    PermanentDeliveryError,
    PublicPost,
    PublishResult,
    Result,
    TransientDeliveryError,
)
from channels.egress import BlockedAddressError
from channels.slack_threads import PLACE as SLACK_PLACE

log = logging.getLogger(__name__)

LOCK_SECONDS = 120
THREAD_TTL = 90 * 24 * 3600  # an incident's Slack thread is found again for 90 days


def _thread_key(incident_id: str, network: str) -> str:
    return f"bc:thread:{incident_id}:{network}"


def places(svc: Services, announcement: Announcement) -> list[tuple[str, str]]:
    """(ledger channel, place) pairs this announcement is posted to.

    An announcement for internal audiences only goes to internal webhook targets and
    nowhere else public: no social post, no public target (``domain/visibility.py``).
    """
    found: list[tuple[str, str]] = []
    internal = visibility.stays_inside(svc.plan, announcement)
    if "social" in announcement.channels and not internal:
        found += [("social", place) for place in svc.networks]
    if "webhook" in announcement.channels:
        for target in svc.plan.webhooks:
            if visibility.reaches_target(svc.plan, target, announcement):
                found.append(("webhook", target.name))
    return found


def plan_public(svc: Services, announcement: Announcement, ledger: Ledger) -> int:
    """Record and enqueue one job per public place; returns how many were new."""
    count = 0
    for channel, place in places(svc, announcement):
        if ledger.enqueue(channel, [place]):
            queues.enqueue_public(svc.redis, announcement.id, channel, place)
            count += 1
    return count


def event_for(svc: Services, announcement: Announcement, internal: bool = True) -> dict[str, Any]:
    """The announcement's facts, as sent to webhooks; a public target (``internal`` false)
    is not told the internal audiences."""
    keys = (
        "id",
        "incident_id",
        "title",
        "body",
        "severity",
        "status",
        "audiences",
        "translations",
        "corrects",
        "published_at",
        "next_update_at",
    )
    event = {key: getattr(announcement, key) for key in keys}
    if not internal:
        event["audiences"] = visibility.public_audiences(svc.plan, announcement.audiences)
    event["status_url"] = svc.renderer.status_url
    # The same words every agent uses (see the agent brief).
    event["reply"] = reply(svc, announcement, svc.plan.default_locale)[1]
    event["exercise"] = announcement.exercise  # a drill's: the team's chat must see it too
    return event


def public_job(
    announcement_id: str, channel: str, place: str, attempt: int = 1, for_staff: bool = False
) -> str:
    """Post one announcement to one public place; returns the outcome.

    ``for_staff``: post the agent brief to a staff webhook target instead (``staff.py``),
    recorded in the staff ledger.
    """
    svc = services()
    announcement = svc.announcements.get(announcement_id)
    ledger = drill_guard.ledger_for(
        svc.redis,
        staff.ledger_id(announcement_id) if for_staff else announcement_id,
        announcement,
        svc.plan,
        svc.subscribers,
    )
    if not ledger.claim(channel, [place]):
        return "skipped: already claimed or sent"
    lock = f"bc:lock:{_thread_key(announcement.incident_id, place)}"
    threaded = channel == "social" or place == SLACK_PLACE  # posts reply to the last one
    if threaded and not svc.redis.set(lock, announcement_id, nx=True, ex=LOCK_SECONDS):
        # Another update of this incident is being posted: wait for it, then reply to it.
        ledger.release(channel, [place])
        queues.enqueue_public(svc.redis, announcement_id, channel, place, attempt, delay=2)
        return "waiting for the thread"
    # A network's budget is shared by every worker: wait for our slot, or come back later
    # when the network paused us (429) or is marked down, without spending an attempt.
    network = svc.networks.get(place) if channel == "social" else None
    gate = pacing.gate_for(svc.redis, network.transport, svc.config) if network else None
    later = gate.wait_turn(float(svc.config.get("PROVIDER_WAIT_INLINE", 10))) if gate else 0.0
    if later:
        svc.redis.delete(lock)
        ledger.release(channel, [place])
        queues.enqueue_public(svc.redis, announcement_id, channel, place, attempt, delay=later)
        return f"waiting {later:.0f}s for {place}"
    try:
        result = (
            _brief(svc, announcement, place)
            if for_staff
            else _publish(svc, announcement, channel, place)
        )
    except DeliveryError as exc:
        if gate:
            outcome = "retry" if isinstance(exc, TransientDeliveryError) else "failed"
            gate.observe([Result(place, outcome, retry_after=exc.retry_after)])
        _failed(svc, ledger, announcement_id, channel, place, attempt, exc, for_staff)
        return f"error: {exc.reason}"
    finally:
        if threaded:
            svc.redis.delete(lock)
    if gate:
        gate.observe([Result(place, "sent")])
    ledger.note(
        channel,
        {
            place: {
                "attempts": attempt,
                "provider_id": result.provider_id,
                "url": result.url,
                "error": None,
                "to": place,
                **result.extra,
            }
        },
    )
    ledger.move(channel, [place], "sent", ["sending"])
    return "sent"


def _publish(svc: Services, announcement: Announcement, channel: str, place: str) -> PublishResult:
    locale = svc.plan.default_locale
    key = f"{announcement.id}:{place}"
    if channel == "social":
        network = svc.networks.get(place)
        if network is None:
            # Queued before a plan without this [social.LOCALE] account was loaded.
            raise PermanentDeliveryError(f"social account {place!r} is no longer configured")
        if visibility.stays_inside(svc.plan, announcement):
            # Queued before the plan made its audiences internal: it stays inside now.
            raise PermanentDeliveryError(f"{place}: the announcement is for internal audiences")
        # A public post: the internal audiences' routes are no business of the world.
        audiences = visibility.public_audiences(svc.plan, announcement.audiences)
        # The network's template and limit; the place's language (the translation if the
        # announcement has one, else the default language: its followers are still told).
        rendering = svc.renderer.render(
            network.name, announcement, audiences, place_locale(place, svc.plan.default_locale)
        )
        raw = svc.redis.get(_thread_key(announcement.incident_id, place))
        post = PublicPost(
            announcement.id,
            announcement.incident_id,
            rendering.content["text"],
            svc.renderer.status_url,
            rendering.locale,  # the language the post is in, as the network tags it
            key,
            reply_to=json.loads(raw) if raw else None,
            event={"published_at": announcement.published_at},  # dates Bluesky's record key
        )
        result = network.publish(post)
        if result.thread:
            svc.redis.set(_thread_key(announcement.incident_id, place), json.dumps(result.thread))
        return result
    target = next((t for t in svc.plan.webhooks if t.name == place), None)
    if target is None:
        raise PermanentDeliveryError(f"webhook target {place!r} is no longer in the plan")
    if not visibility.reaches_target(svc.plan, target, announcement):
        # Queued before the plan made its audiences internal (or the target public).
        raise PermanentDeliveryError(f"webhook target {place!r} may not get this announcement")
    audiences = (
        announcement.audiences
        if target.internal
        else visibility.public_audiences(svc.plan, announcement.audiences)
    )
    rendering = svc.renderer.render("banner", announcement, audiences, locale)
    post = PublicPost(
        announcement.id,
        announcement.incident_id,
        _marked(rendering.content["text"], announcement, locale),
        svc.renderer.status_url,
        locale,
        key,
        event=event_for(svc, announcement, target.internal),
    )
    return svc.webhook.deliver(target, post)


def _brief(svc: Services, announcement: Announcement, place: str) -> PublishResult:
    """Post the agent brief to one staff webhook target, or the incident's Slack thread."""
    if place == SLACK_PLACE:
        locale = svc.plan.default_locale
        text = _marked(staff_message.text(svc, announcement, locale), announcement, locale)
        ts = post_in_thread(svc, announcement.incident_id, text)
        return PublishResult(provider_id=ts)
    target = next((t for t in staff.targets(svc.plan) if t.name == place), None)
    if target is None:
        raise PermanentDeliveryError(f"webhook target {place!r} is no longer a staff target")
    locale = svc.plan.default_locale
    return svc.webhook.deliver(
        target,
        PublicPost(
            announcement.id,
            announcement.incident_id,
            _marked(staff_message.text(svc, announcement, locale), announcement, locale),
            svc.renderer.status_url,
            locale,
            # Not the announcement's own key: a target may get both, and must keep both.
            f"{announcement.id}:staff:{place}",
            event={
                **event_for(svc, announcement),
                "brief": announcement_brief(svc, announcement, locale),
            },
            event_type="staff.brief",
        ),
    )


def _marked(text: str, announcement: Announcement, locale: str) -> str:
    """A drill's text starts with the exercise word, on the team's chat too."""
    return exercise.prefixed(text, locale) if announcement.exercise else text


def post_in_thread(svc: Services, incident_id: str, text: str) -> str:
    """Post to the incident's Slack thread (its first post starts it); the message's ts.

    The caller holds the thread lock, or posts what may start a thread of its own.
    """
    key = _thread_key(incident_id, SLACK_PLACE)
    root = svc.redis.get(key)
    ts = svc.slack.post(text, root.decode() if root else None)
    if root is None:
        svc.redis.set(key, ts, nx=True, ex=THREAD_TTL)
    return ts


def _failed(
    svc: Services,
    ledger: Ledger,
    announcement_id: str,
    channel: str,
    place: str,
    attempt: int,
    exc: DeliveryError,
    for_staff: bool = False,
) -> None:
    ledger.note(channel, {place: {"attempts": attempt, "error": exc.reason, "to": place}})
    if isinstance(exc, BlockedAddressError):
        # Someone pointed a target (or its DNS) inward: loud, counted, and never retried.
        log.warning("%s (announcement %s)", exc.reason, announcement_id)
        metrics.count(svc.redis, "webhook_blocked", place)
    if isinstance(exc, TransientDeliveryError) and attempt < int(svc.config["MAX_ATTEMPTS"]):
        ledger.release(channel, [place])
        delay = queues.retry_delay(svc.config, attempt, exc.retry_after)
        log.info("retrying %s %s of %s in %.1fs", channel, place, announcement_id, delay)
        queues.enqueue_public(
            svc.redis, announcement_id, channel, place, attempt + 1, delay, for_staff
        )
        return
    ledger.move(channel, [place], "failed", ["sending"])
