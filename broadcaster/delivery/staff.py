"""Staff first: every customer-facing announcement reaches staff before the customers.

When the plan has a ``[staff]`` table, the plan job of an announcement that customers will
hear (not one for internal audiences only):

1. sends the agent brief (``rendering/staff_message.py``) to the people of the staff
   audiences by email and SMS, and to the internal webhook targets that name a staff
   audience, in the plan job itself, so it has left before any customer batch exists.
   These deliveries live in a ledger of their own (``ledger_id``): they never count as
   customer deliveries, and receipts find them by the id the messages carry;
2. then lets the customers' fan-out start: at once for a holding statement (pre-approved
   with the plan), else ``lead_seconds`` after the brief (the ``customers-<id>`` job on the
   plan queue, scheduled by RQ's scheduler, which every worker runs).

The brief is *sent* first, not necessarily delivered: a staff delivery that must be retried
later does not hold the customers back, and a staff step that fails is logged and counted,
never an announcement that stays unsent. Nobody to brief means no lead.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from broadcaster.delivery import drill_guard
from broadcaster.domain import visibility
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.ledger import Ledger, staff_ledger_id
from broadcaster.domain.plan import Plan
from broadcaster.domain.subscribers import channels_for
from broadcaster.infra import metrics
from broadcaster.services import Services
from channels import CONTACT_FIELD
from channels.slack_threads import PLACE as SLACK_PLACE
from channels.webhook import WebhookTarget

log = logging.getLogger(__name__)

STATE_TTL = 30 * 24 * 3600


def ledger_id(announcement_id: str) -> str:
    """The id of the ledger holding an announcement's staff deliveries."""
    return staff_ledger_id(announcement_id)


def _state_key(announcement_id: str) -> str:
    return f"bc:staff:{announcement_id}"


def applies(plan: Plan, announcement: Announcement) -> bool:
    """Whether staff are told before the customers hear ``announcement``."""
    return (
        plan.staff is not None
        and bool(plan.staff.audiences)
        and announcement.published
        and not visibility.internal_only(plan, announcement.audiences)
    )


def lead_for(svc: Services, announcement: Announcement) -> int:
    """Seconds between the brief and the customers: none for a holding statement."""
    staff = svc.plan.staff
    cap = svc.config.get("STAFF_LEAD_MAX")
    return staff.lead_for(announcement.preapproved, cap) if staff else 0


def customer_audiences(plan: Plan, announcement: Announcement) -> list[str]:
    """The audiences the customers' fan-out reaches: staff audiences had the brief instead."""
    if not applies(plan, announcement):
        return list(announcement.audiences)
    assert plan.staff is not None
    return [name for name in announcement.audiences if name not in plan.staff.audiences]


def targets(plan: Plan) -> list[WebhookTarget]:
    """Internal webhook targets that name a staff audience (the staff chat)."""
    if plan.staff is None or "webhook" not in plan.staff.channels:
        return []
    wanted = set(plan.staff.audiences)
    return [t for t in plan.webhooks if t.internal and wanted & set(t.audiences)]


def places(svc: Services) -> list[str]:
    """Where the brief is posted for staff: the staff webhook targets, and the incident's
    Slack thread when a bot is configured and the plan briefs staff by webhook."""
    found = [target.name for target in targets(svc.plan)]
    staff = svc.plan.staff
    if svc.slack.configured and staff is not None and "webhook" in staff.channels:
        found.append(SLACK_PLACE)
    return found


def _plan_people(svc: Services, announcement: Announcement, ledger: Ledger) -> dict[str, list[str]]:
    """Record a ``queued`` staff delivery per (channel, person); returns the ids to send.

    Deliveries still queued or being sent from an earlier, interrupted run are sent again
    (their claims keep anyone from getting the brief twice).
    """
    staff = svc.plan.staff
    assert staff is not None
    # The brief travels on the staff channels, whatever the customer announcement uses.
    view = dataclasses.replace(
        announcement,
        audiences=list(staff.audiences),
        channels=[c for c in staff.channels if c in CONTACT_FIELD],
    )
    todo: dict[str, list[str]] = {}
    for chunk in svc.subscribers.ids_in(staff.audiences):
        people = svc.subscribers.get_many(chunk)
        by_channel: dict[str, list[str]] = {}
        for sid, person in people.items():
            send, skip = channels_for(person, view, svc.plan)
            for channel in send:
                by_channel.setdefault(channel, []).append(sid)
            for channel in skip:
                skipped = ledger.move(channel, [sid], "skipped", ["new"])
                ledger.note(channel, {s: {"error": "opted out"} for s in skipped})
        for channel, ids in by_channel.items():
            ledger.enqueue(channel, ids)
            states = ledger.states(channel, ids)
            todo.setdefault(channel, []).extend(
                sid for sid in ids if states.get(sid) in ("queued", "sending")
            )
    return todo


def brief_first(
    svc: Services,
    announcement: Announcement,
    send: Callable[[str, list[str]], Any],
    publish: Callable[[str], Any],
) -> float:
    """Send the brief to staff (once per announcement); seconds the customers still wait.

    ``send(channel, ids)`` sends one batch of staff people now; ``publish(place)`` posts the
    brief to one staff webhook target now.
    """
    key = _state_key(announcement.id)
    state = {k.decode(): v.decode() for k, v in svc.redis.hgetall(key).items()}
    if "customers_at" not in state:
        reached = _send_brief(svc, announcement, send, publish)
        lead = lead_for(svc, announcement) if reached else 0
        now = time.time()
        state = {
            "lead_seconds": str(lead),
            "briefed_at": str(now),
            "customers_at": str(now + lead),
            "reached": str(reached),
        }
        svc.redis.hset(key, mapping=state)
        svc.redis.expire(key, STATE_TTL)
        log.info("briefed %d staff for %s; customers in %ds", reached, announcement.id, lead)
    return max(0.0, float(state["customers_at"]) - time.time())


def _send_brief(
    svc: Services,
    announcement: Announcement,
    send: Callable[[str, list[str]], Any],
    publish: Callable[[str], Any],
) -> int:
    """Send the brief everywhere staff read; returns how many deliveries it recorded."""
    ledger = drill_guard.ledger_for(
        svc.redis, ledger_id(announcement.id), announcement, svc.plan, svc.subscribers
    )
    reached = 0
    try:
        for channel, ids in _plan_people(svc, announcement, ledger).items():
            size = max(1, svc.channels[channel].max_batch)
            for i in range(0, len(ids), size):
                send(channel, ids[i : i + size])
            reached += len(ids)
        for place in places(svc):
            ledger.enqueue("webhook", [place])
            if ledger.states("webhook", [place]).get(place) in ("queued", "sending"):
                publish(place)
                reached += 1
    except Exception:
        # Whatever went wrong with the brief, the customers must still hear it.
        log.exception("briefing staff for %s failed; customers go ahead", announcement.id)
        metrics.count(svc.redis, "staff_briefs", "failed")
        return reached
    metrics.count(svc.redis, "staff_briefs", "sent" if reached else "nobody")
    return reached


def status(svc: Services, announcement: Announcement) -> dict[str, Any] | None:
    """Staff first as the API shows it, or None when staff are not told first."""
    if not applies(svc.plan, announcement):
        return None
    stored = svc.redis.hgetall(_state_key(announcement.id))
    raw = {k.decode(): v.decode() for k, v in stored.items()}
    when = {key: float(raw[key]) if key in raw else None for key in ("briefed_at", "customers_at")}
    return {
        "lead_seconds": int(raw.get("lead_seconds", lead_for(svc, announcement))),
        **when,
        "deliveries": Ledger(svc.redis, ledger_id(announcement.id)).counts(),
    }
