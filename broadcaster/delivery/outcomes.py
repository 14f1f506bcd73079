"""What becomes of a batch's deliveries once the provider answered: recorded in the ledger,
sent again by the plan's fallback channel when they failed for good, or retried later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from broadcaster.delivery import queues
from broadcaster.domain.ledger import Ledger
from broadcaster.infra import metrics
from broadcaster.infra.logs import mask_contact
from broadcaster.services import Services
from channels import CONTACT_FIELD
from channels.base import Outgoing, Result

log = logging.getLogger(__name__)


def record(
    ledger: Ledger,
    channel: str,
    batch: list[Outgoing],
    results: Iterable[Result],
    attempt: int,
    transport: str,
    reached: str | None = None,
) -> None:
    """Move each claimed delivery to its outcome and keep the details.

    ``sent`` also adds the person to the incident's reached set, in the same Lua call.
    """
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
    # From "queued" too: a Redis failover may have lost the claim (written to the old
    # primary just before the switch) but the message went out; the record must say so.
    ledger.move(channel, by_outcome["sent"], "sent", ["sending", "queued"], reached=reached)
    ledger.move(channel, by_outcome["failed"], "failed", ["sending", "queued"])
    ledger.release(channel, by_outcome["retry"])


def fall_back(
    svc: Services,
    ledger: Ledger,
    announcement_id: str,
    channel: str,
    ids: list[str],
    for_staff: bool = False,
) -> None:
    """Send what failed for good by the person's next channel, else the plan's fallback.

    The next channel is the one after ``channel`` in the person's own order
    (domain/channel_order.py), else the plan's ``policy.fallback`` (``{sms = "email"}``).
    Only to people who have that contact, did not opt out of it and, if they chose their
    channels, chose it too; both deliveries say so. Someone who already has a delivery of
    this announcement by that channel gets nothing more.
    """
    people = svc.subscribers.get_many(ids)
    by_target: dict[str, list[str]] = {}
    for sid in ids:
        person = people.get(sid)
        target = _next_channel(person, channel, svc.plan.fallback.get(channel)) if person else None
        if target:
            by_target.setdefault(target, []).append(sid)
    for other, able in by_target.items():
        new = ledger.enqueue(other, able)
        ledger.note(channel, {sid: {"fallback": other} for sid in new})
        ledger.note(other, {sid: {"fallback_from": channel} for sid in new})
        if new:
            log.info("%s of %s: %d fall back to %s", channel, announcement_id, len(new), other)
            queues.enqueue_batch(svc.redis, announcement_id, other, new, for_staff=for_staff)


def _next_channel(person: dict[str, Any], channel: str, plan_next: str | None) -> str | None:
    """The channel a failure on ``channel`` moves on to for this person (None: none)."""

    def reachable(other: str) -> bool:
        chosen = person.get("channels")
        return bool(
            other in CONTACT_FIELD
            and person.get(CONTACT_FIELD[other])
            and other not in (person.get("opt_outs") or [])
            and (not chosen or other in chosen)
        )

    order = person.get("channels") or []
    if channel in order:
        for other in order[order.index(channel) + 1 :]:
            if reachable(other):
                return other
    return plan_next if plan_next and reachable(plan_next) else None


def retry_later(
    svc: Services,
    ledger: Ledger,
    announcement_id: str,
    channel: str,
    ids: list[str],
    attempt: int,
    retry_after: float,
    for_staff: bool = False,
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
    metrics.count(svc.redis, "retries", channel, amount=len(ids))
    queues.enqueue_batch(svc.redis, announcement_id, channel, ids, attempt + 1, delay, for_staff)
