"""Replies become tickets: a customer's SMS or email reply to an announcement opens a ticket
in each connected helpdesk — requester, the incident's tag (``incident-<id>``), the
announcement replied to, the language — and their later replies within the incident are
comments on that ticket, not new tickets.

The ticket id per (helpdesk, incident, person) is kept in Redis, so agents see one
conversation per customer per incident. Replies of one person are handled one at a time
(a short lock), so two quick replies never open two tickets.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from broadcaster.delivery import queues
from broadcaster.delivery.helpdesk_gate import Gated
from broadcaster.infra import metrics
from broadcaster.services import Services, services
from channels.base import DeliveryError, TransientDeliveryError
from channels.helpdesks import Ticket

log = logging.getLogger(__name__)

STATE_TTL = 90 * 24 * 3600
LOCK_SECONDS = 60


def _ticket_key(desk: str, incident_id: str, contact: str) -> str:
    person = hashlib.sha256(contact.encode()).hexdigest()[:24]  # no contact data in keys
    return f"bc:helpdesk:ticket:{desk}:{incident_id}:{person}"


def after_reply(svc: Services, reply: dict[str, Any]) -> None:
    """Queue the ticket (or comment) of one kept reply, when a helpdesk is connected.

    ``reply``: incident_id, announcement_id, channel (sms/email), contact (unmasked),
    language, body, subject (email).
    """
    if svc.helpdesks:
        queues.enqueue_ticket(svc.redis, reply)


def ticket_job(reply: dict[str, Any], attempt: int = 1, only: str | None = None) -> str:
    """Open the reply's ticket or comment on the person's ticket, in every helpdesk
    (``only``: in that one, a retry)."""
    svc = services()
    outcomes = []
    for name, helpdesk in svc.helpdesks.items():
        if only and only != name:
            continue
        desk = Gated(svc, name, helpdesk)
        key = _ticket_key(name, reply["incident_id"], reply["contact"])
        if not svc.redis.set(f"{key}:lock", "1", nx=True, ex=LOCK_SECONDS):
            queues.enqueue_ticket(svc.redis, reply, attempt, delay=2, only=name)
            outcomes.append(f"{name}: waiting")
            continue
        try:
            existing = svc.redis.get(key)
            if existing:
                desk.add_comment(existing.decode(), _comment(reply))
                outcomes.append(f"{name}: comment")
            else:
                ticket_id = desk.create_ticket(_ticket(reply))
                svc.redis.set(key, ticket_id, ex=STATE_TTL)
                outcomes.append(f"{name}: ticket")
            metrics.count(svc.redis, "reply_tickets", name, "ok")
        except TransientDeliveryError as exc:
            if attempt < int(svc.config["MAX_ATTEMPTS"]):
                delay = queues.retry_delay(svc.config, attempt, exc.retry_after)
                queues.enqueue_ticket(svc.redis, reply, attempt + 1, delay, only=name)
            metrics.count(svc.redis, "reply_tickets", name, "retry")
            outcomes.append(f"{name}: retry ({exc.reason})")
        except DeliveryError as exc:
            log.warning("reply ticket in %s failed: %s", name, exc.reason)
            metrics.count(svc.redis, "reply_tickets", name, "failed")
            outcomes.append(f"{name}: failed ({exc.reason})")
        finally:
            svc.redis.delete(f"{key}:lock")
    return "; ".join(outcomes)


def _ticket(reply: dict[str, Any]) -> Ticket:
    channel = reply["channel"]
    return Ticket(
        subject=reply.get("subject") or f"Reply by {channel.upper()} about: {reply['title']}",
        body=_comment(reply),
        email=reply["contact"] if channel == "email" else None,
        phone=reply["contact"] if channel in ("sms", "whatsapp") else None,
        tags=(f"incident-{reply['incident_id']}", "broadcaster", f"reply-{channel}"),
        language=reply.get("language") or "",
    )


def _comment(reply: dict[str, Any]) -> str:
    return (
        f"{reply['body']}\n\n"
        f"— {reply['channel'].upper()} reply from {reply['contact']} "
        f"(language: {reply.get('language') or '?'}) to announcement "
        f"{reply['announcement_id']} ({reply['title']}), incident {reply['incident_id']}"
    )
