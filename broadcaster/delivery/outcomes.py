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
    """Send by the plan's fallback channel (``fallback = {sms = "email"}``) what failed for good.

    Only to people who have that contact, did not opt out of it and, if they chose their
    channels, chose it too; both deliveries say so. Someone who already gets this
    announcement by that channel gets nothing more.
    """
    other = svc.plan.fallback[channel]
    people = svc.subscribers.get_many(ids)

    def reachable(person: dict[str, Any]) -> bool:
        chosen = person.get("channels")
        return bool(
            person.get(CONTACT_FIELD[other])
            and other not in (person.get("opt_outs") or [])
            and (not chosen or other in chosen)
        )

    able = [sid for sid in ids if sid in people and reachable(people[sid])]
    new = ledger.enqueue(other, able)
    ledger.note(channel, {sid: {"fallback": other} for sid in new})
    ledger.note(other, {sid: {"fallback_from": channel} for sid in new})
    if new:
        log.info("%s of %s: %d fall back to %s", channel, announcement_id, len(new), other)
        queues.enqueue_batch(svc.redis, announcement_id, other, new, for_staff=for_staff)


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
