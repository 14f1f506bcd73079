"""The fan-out jobs: one plan job per announcement, then batch jobs per channel.

The plan job streams the audiences' subscribers, picks each person's channels, records a
``queued`` delivery per (channel, person) — the ledger refuses a second record, which is
what deduplicates people in several audiences — and enqueues batches. A batch job claims
its recipients just before the provider call and marks them after.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from broadcaster import publishing, queues, unsubscribe
from broadcaster.ledger import Ledger
from broadcaster.services import Services, services
from broadcaster.subscribers import mask_contact
from channels import CONTACT_FIELD
from channels.base import UNSUBSCRIBE_PLACEHOLDER, Outgoing, Result

log = logging.getLogger(__name__)


def channels_for(
    subscriber: dict[str, Any], announcement: dict[str, Any], svc: Services
) -> tuple[list[str], list[str]]:
    """One person's channels: (to send, opted out).

    Announcement ∩ their audiences' channels ∩ their own preference ∩ the contacts they have;
    opted-out channels are returned apart, to be recorded as skipped.
    """
    wanted = set(announcement["channels"])
    audience_channels: set[str] = set()
    for name in set(subscriber["audiences"]) & set(announcement["audiences"]):
        audience = svc.plan.audiences.get(name)
        if audience:
            audience_channels.update(audience.channels)
    wanted &= audience_channels
    if subscriber.get("channels"):
        wanted &= set(subscriber["channels"])
    reachable = sorted(c for c in wanted if c in CONTACT_FIELD and subscriber.get(CONTACT_FIELD[c]))
    opted_out = set(subscriber.get("opt_outs") or [])
    return [c for c in reachable if c not in opted_out], [c for c in reachable if c in opted_out]


def plan_job(announcement_id: str) -> dict[str, int]:
    """Resolve audiences to recipients and enqueue batch jobs; returns recipients per channel."""
    svc = services()
    announcement = svc.announcements.get(announcement_id)
    ledger = Ledger(svc.redis, announcement_id)
    # A re-run after a crash must also pick up people it queued but never batched.
    rerun = not svc.redis.set(f"bc:plan:{announcement_id}:started", 1, nx=True, ex=7 * 24 * 3600)
    sizes = {name: int(getattr(svc.channels[name], "max_batch", 500)) for name in svc.channels}
    sizes["email"] = min(sizes.get("email", 1000), int(svc.config["EMAIL_BATCH_SIZE"]))
    sizes["sms"] = min(sizes.get("sms", 500), int(svc.config["SMS_BATCH_SIZE"]))
    pending: dict[str, list[str]] = {name: [] for name in svc.channels}
    totals: dict[str, int] = dict.fromkeys(svc.channels, 0)

    for chunk in svc.subscribers.ids_in(announcement["audiences"]):
        people = svc.subscribers.get_many(chunk)
        by_channel: dict[str, list[str]] = {}
        opted_out: dict[str, list[str]] = {}
        for sid, person in people.items():
            send, skip = channels_for(person, announcement, svc)
            for channel in send:
                by_channel.setdefault(channel, []).append(sid)
            for channel in skip:
                opted_out.setdefault(channel, []).append(sid)
        for channel, ids in opted_out.items():
            skipped = ledger.move(channel, ids, "skipped", ["new"])
            ledger.note(channel, {sid: {"error": "opted out"} for sid in skipped})
        for channel, ids in by_channel.items():
            new = ledger.enqueue(channel, ids)
            if rerun:
                states = ledger.states(channel, [i for i in ids if i not in set(new)])
                new += [sid for sid, state in states.items() if state == "queued"]
            pending[channel].extend(new)
            totals[channel] += len(new)
            while len(pending[channel]) >= sizes[channel]:
                batch, pending[channel] = (
                    pending[channel][: sizes[channel]],
                    pending[channel][sizes[channel] :],
                )
                queues.enqueue_batch(svc.redis, announcement_id, channel, batch)
    for channel, ids in pending.items():
        if ids:
            queues.enqueue_batch(svc.redis, announcement_id, channel, ids)
    totals["public"] = publishing.plan_public(svc, announcement, ledger)
    log.info("planned %s: %s", announcement_id, totals)
    return totals


def batch_job(
    announcement_id: str, channel: str, subscriber_ids: list[str], attempt: int = 1
) -> dict[str, int]:
    """Send one channel's batch; returns counts of sent, failed, retried and skipped."""
    svc = services()
    announcement = svc.announcements.get(announcement_id)
    ledger = Ledger(svc.redis, announcement_id)
    sender = svc.channels[channel]
    people = svc.subscribers.get_many(subscriber_ids)
    states = ledger.states(channel, subscriber_ids)
    todo = [sid for sid in subscriber_ids if states.get(sid) == "queued"]

    # Erased, contact removed or opted out since planning: record why, send nothing.
    reasons = {}
    for sid in todo:
        person = people.get(sid)
        if not person or not person.get(CONTACT_FIELD[channel]):
            reasons[sid] = "no contact for this channel any more"
        elif channel in (person.get("opt_outs") or []):
            reasons[sid] = "opted out"
    gone = ledger.move(channel, list(reasons), "skipped", ["queued"])
    ledger.note(channel, {sid: {"error": reasons[sid]} for sid in gone})
    todo = [sid for sid in todo if sid not in reasons]

    rendered: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
    secret, public_url = str(svc.config["SECRET_KEY"]), str(svc.config["PUBLIC_URL"])

    def outgoing(sid: str) -> Outgoing:
        person = people[sid]
        audiences = tuple(sorted(set(person["audiences"]) & set(announcement["audiences"])))
        key = (person["locale"], audiences)
        if key not in rendered:  # render once per locale × audience set, not per person
            rendered[key] = svc.renderer.render(
                channel, announcement, list(audiences), person["locale"]
            ).content
        personal = {}
        if channel == "email":
            personal[UNSUBSCRIBE_PLACEHOLDER] = unsubscribe.link(secret, public_url, sid)
        return Outgoing(sid, person[CONTACT_FIELD[channel]], rendered[key], personal)

    counts = {"sent": 0, "failed": 0, "retry": 0, "skipped": len(gone)}
    retry_ids: list[str] = []
    retry_after = 0.0
    # Claim only what is about to be in flight, so a crash strands at most one step.
    step = (
        max(1, len(todo)) if channel == "email" else max(1, int(getattr(sender, "concurrency", 16)))
    )
    for start in range(0, len(todo), step):
        claimed = ledger.claim(channel, todo[start : start + step])
        if not claimed:
            continue
        batch = [outgoing(sid) for sid in claimed]
        results = sender.send(batch)
        _record(ledger, channel, batch, results, attempt, sender.transport)
        for result in results:
            counts[result.outcome] += 1
            if result.outcome == "retry":
                retry_ids.append(result.subscriber_id)
                retry_after = max(retry_after, result.retry_after or 0.0)

    if retry_ids:
        _retry_later(svc, ledger, announcement_id, channel, retry_ids, attempt, retry_after)
    return counts


def _record(
    ledger: Ledger,
    channel: str,
    batch: list[Outgoing],
    results: Iterable[Result],
    attempt: int,
    transport: str,
) -> None:
    """Move each claimed delivery to its outcome and keep the details."""
    to = {item.subscriber_id: item.to for item in batch}
    by_outcome: dict[str, list[str]] = {"sent": [], "failed": [], "retry": []}
    details: dict[str, dict[str, Any]] = {}
    for result in results:
        by_outcome[result.outcome].append(result.subscriber_id)
        details[result.subscriber_id] = {
            "to": mask_contact(to[result.subscriber_id]),
            "attempts": attempt,
            "transport": transport,
            "provider_id": result.provider_id,
            "error": result.error,
            **result.extra,
        }
    ledger.note(channel, details)
    ledger.move(channel, by_outcome["sent"], "sent", ["sending"])
    ledger.move(channel, by_outcome["failed"], "failed", ["sending"])
    ledger.release(channel, by_outcome["retry"])


def _retry_later(
    svc: Services,
    ledger: Ledger,
    announcement_id: str,
    channel: str,
    ids: list[str],
    attempt: int,
    retry_after: float,
) -> None:
    """Enqueue a retry batch with backoff (honouring Retry-After), or give up after the last."""
    if attempt >= int(svc.config["MAX_ATTEMPTS"]):
        moved = ledger.move(channel, ids, "failed", ["queued"])
        ledger.note(
            channel, {sid: {"gave_up": f"gave up after {attempt} attempts"} for sid in moved}
        )
        return
    delay = queues.retry_delay(svc.config, attempt, retry_after)
    log.info("retrying %d %s deliveries of %s in %.1fs", len(ids), channel, announcement_id, delay)
    queues.enqueue_batch(svc.redis, announcement_id, channel, ids, attempt + 1, delay)
