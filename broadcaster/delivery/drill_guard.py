"""A drill reaches the drill team only: enforced where its deliveries are created.

Choosing recipients already keeps a drill to the plan's drill audiences (``audiences``),
but the rule that matters is that *no* delivery of an exercise can exist for anyone else:
the ledger of an exercise announcement (``ledger_for``) refuses to record a delivery to a
person outside the drill audiences, to a social network, or to a public webhook target,
whichever code path asks. Messages of an exercise start with the word for exercise in the
reader's language (``rendering/exercise.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.ledger import Ledger
from broadcaster.domain.plan import Plan
from broadcaster.domain.subscribers import SubscriberStore
from broadcaster.infra import metrics
from channels import CONTACT_FIELD
from channels.slack_threads import PLACE as SLACK_PLACE

log = logging.getLogger(__name__)


def drill_audiences(plan: Plan) -> tuple[str, ...]:
    """The only audiences a drill may reach (none when the plan has no ``[drills]``)."""
    return plan.drills.audiences if plan.drills else ()


def audiences(plan: Plan, announcement: Announcement, chosen: list[str]) -> list[str]:
    """The audiences a fan-out reads: for an exercise, the drill audiences stand in for the
    customers, so the team sees what customers would get."""
    return list(drill_audiences(plan)) if announcement.exercise else chosen


class DrillLedger(Ledger):
    """The ledger of an exercise: every new delivery is checked against the drill audiences."""

    def __init__(
        self, r: redis.Redis, ledger_id: str, plan: Plan, subscribers: SubscriberStore
    ) -> None:
        super().__init__(r, ledger_id)
        self.plan = plan
        self.subscribers = subscribers

    def move(
        self,
        channel: str,
        subscriber_ids: Iterable[str],
        to_state: str,
        from_states: Iterable[str],
        reached: str | None = None,
    ) -> list[str]:
        """As ``Ledger.move``; a move that would create a delivery (from ``new``) keeps only
        the recipients a drill may reach."""
        ids = list(subscriber_ids)
        states = list(from_states)
        if "new" in states:
            allowed = self.allowed(channel, ids)
            refused = len(ids) - len(allowed)
            if refused:
                log.warning(
                    "drill %s: refused %d %s deliveries", self.announcement_id, refused, channel
                )
                metrics.count(self.r, "drill_refused", channel, amount=refused)
            ids = allowed
        return super().move(channel, ids, to_state, states, reached)

    def allowed(self, channel: str, ids: list[str]) -> list[str]:
        """Of ``ids`` on ``channel``, those a drill may reach."""
        if not ids:
            return []
        if channel in CONTACT_FIELD:
            team = set(drill_audiences(self.plan))
            people = self.subscribers.get_many(ids)
            return [
                sid
                for sid in ids
                if sid in people and team & set(people[sid].get("audiences") or [])
            ]
        if channel == "webhook":  # internal targets only: the team's own chat
            internal = {t.name for t in self.plan.webhooks if t.internal} | {SLACK_PLACE}
            return [name for name in ids if name in internal]
        return []  # social, banner…: public by nature


def ledger_for(
    r: redis.Redis,
    ledger_id: str,
    announcement: Announcement,
    plan: Plan,
    subscribers: SubscriberStore,
) -> Ledger:
    """The ledger to record ``announcement``'s deliveries in (``ledger_id``: its own or its
    staff ledger): guarded when it is an exercise."""
    if announcement.exercise:
        return DrillLedger(r, ledger_id, plan, subscribers)
    return Ledger(r, ledger_id)
