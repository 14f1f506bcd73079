"""Which personal channels a person gets an announcement by, and in what order.

A subscriber's ``channels`` is their choice *and* their order (``["whatsapp", "sms",
"email"]``: WhatsApp first). What the order means:

- **Ordinary audiences**: every channel the person may get is sent at once, as always
  (the order changes nothing about who gets what); a delivery that fails for good moves on
  to the next channel in their order they are not getting yet, before the plan's
  ``policy.fallback`` (delivery/outcomes.py ``fall_back``).
- **Audiences that ask to confirm** (``confirm = {…}``, domain/confirm_plan.py): the person's
  *ladder* is their own order (those of the announcement's and the escalation's channels
  they chose); the first rung goes out first, and each escalation climbs one rung. Someone
  who chose nothing gets every channel of the announcement at once, then the plan's
  ``escalate`` channels one by one. Contacts they lack and channels they opted out of are
  never rungs.

No Flask, no Redis: plain functions of a subscriber, an announcement and the plan.
"""

from __future__ import annotations

from typing import Any

from broadcaster.domain import whatsapp_consent
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.component_choice import announcement_components, touches
from broadcaster.domain.confirm_plan import ConfirmPlan
from broadcaster.domain.incidents import closes
from broadcaster.domain.plan import Plan
from channels import CONTACT_FIELD


def in_order(channels: list[str], person: dict[str, Any]) -> list[str]:
    """``channels`` in the person's order (theirs first, as they listed them), else by name."""
    order = person.get("channels") or []
    rank = {c: i for i, c in enumerate(order)}
    return sorted(channels, key=lambda c: (rank.get(c, len(rank)), c))


def asking_audiences(plan: Plan, announcement: Announcement, audiences: list[str]) -> list[str]:
    """Of ``audiences`` (those a fan-out reads), the ones whose people must confirm, in plan
    order. An all-clear asks nobody: there is nothing left to act on."""
    if closes(announcement.status):
        return []
    chosen = set(audiences)
    return [n for n, a in plan.audiences.items() if n in chosen and a.confirm is not None]


def confirm_for(
    plan: Plan, person: dict[str, Any], asking: list[str]
) -> tuple[str, ConfirmPlan] | None:
    """(audience, its confirm) for a person in any of the ``asking`` audiences: the first in
    plan order they belong to; None when they are in none."""
    theirs = set(person.get("audiences") or [])
    for name in asking:
        confirm = plan.audiences[name].confirm
        if name in theirs and confirm is not None:
            return name, confirm
    return None


def ladder(person: dict[str, Any], sending: list[str], confirm: ConfirmPlan) -> list[str]:
    """The channels tried, in order, for a person who must confirm.

    ``sending``: the channels the announcement itself would use for them (``channels_for``).
    """
    chosen = person.get("channels")
    opted_out = set(person.get("opt_outs") or [])
    if chosen:
        wanted = set(sending) | set(confirm.escalate)
        rungs = [c for c in chosen if c in wanted]
    else:
        rungs = [*sending, *(c for c in confirm.escalate if c not in sending)]
    return [
        c
        for c in dict.fromkeys(rungs)
        if c in CONTACT_FIELD
        and person.get(CONTACT_FIELD[c])
        and c not in opted_out
        # WhatsApp only to who agreed: a rung the batch would skip would waste a window.
        and (c != "whatsapp" or whatsapp_consent.opted_in(person))
    ]


def first_rungs(person: dict[str, Any], sending: list[str], rungs: list[str]) -> list[str]:
    """What goes out before any escalation: their first channel if they chose an order,
    else everything the announcement uses (or the first rung, when that is nothing)."""
    if person.get("channels"):
        return rungs[:1]
    return sending or rungs[:1]


def channels_for(
    subscriber: dict[str, Any],
    announcement: Announcement,
    plan: Plan,
    asking: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """One person's channels: (to send, opted out), in their order.

    Announcement ∩ their audiences' channels ∩ their own preference ∩ the contacts they have;
    opted-out channels are returned apart, to be recorded as skipped. Someone who chose
    components hears only of announcements that touch one of them. ``asking``: the
    audiences that ask to confirm (``asking_audiences``); a person in one gets the first
    rung of their ladder (``first_rungs``) instead.
    """
    if not touches(announcement_components(announcement), subscriber.get("components")):
        return [], []
    wanted = set(announcement.channels)
    audience_channels: set[str] = set()
    for name in set(subscriber["audiences"]) & set(announcement.audiences):
        audience = plan.audiences.get(name)
        if audience:
            audience_channels.update(audience.channels)
    wanted &= audience_channels
    if subscriber.get("channels"):
        wanted &= set(subscriber["channels"])
    reachable = in_order(
        [c for c in wanted if c in CONTACT_FIELD and subscriber.get(CONTACT_FIELD[c])], subscriber
    )
    opted_out = set(subscriber.get("opt_outs") or [])
    send = [c for c in reachable if c not in opted_out]
    skip = [c for c in reachable if c in opted_out]
    found = confirm_for(plan, subscriber, asking) if asking else None
    if found is not None:
        send = first_rungs(subscriber, send, ladder(subscriber, send, found[1]))
    return send, skip


def rungs_for(
    person: dict[str, Any], announcement: Announcement, plan: Plan, asking: list[str]
) -> list[str] | None:
    """The ladder of a person the announcement asks to confirm (None: it asks them nothing,
    e.g. they are in no asking audience, or chose components it does not touch)."""
    found = confirm_for(plan, person, asking)
    if found is None or not touches(
        announcement_components(announcement), person.get("components")
    ):
        return None
    send, _ = channels_for(person, announcement, plan)
    return ladder(person, send, found[1])
