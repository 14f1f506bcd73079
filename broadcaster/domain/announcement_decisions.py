"""Decisions on an announcement that exists: amend a pending one, approve or reject it (a
second person), withdraw a published one (in the open).

Part of the one way in: ``AnnouncementService`` (``announcement_service.py``) is built from
this mixin, which uses its store, its draft checks and its single-transaction save.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.client import Pipeline

from broadcaster.domain import announcement_checks as checks
from broadcaster.domain import (
    audit,
    components,
    four_eyes,
    incident_facts,
    text_policy,
    withdrawal,
)
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import Conflict, Forbidden, Invalid
from broadcaster.domain.principals import Principal
from broadcaster.domain.text_policy import BLOCK

if TYPE_CHECKING:
    from broadcaster.domain.announcements import AnnouncementStore


class Decisions:
    """amend, approve, reject, withdraw; see ``AnnouncementService`` for the rest."""

    store: AnnouncementStore
    on_published: Callable[[Announcement], None]

    # Provided by AnnouncementService.
    def draft(self, *args: Any, **kwargs: Any) -> Announcement:
        raise NotImplementedError

    def _save(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def _after_commit(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def amend(
        self,
        announcement_id: str,
        data: dict[str, Any],
        author: Principal,
        *,
        sanitise: bool = False,
        ip: str | None = None,
    ) -> Announcement:
        """Rewrite a pending announcement in place: by its author, only while it waits.

        Monitoring keeps one "several alerts" draft up to date this way instead of adding a
        draft per alert. Raises Conflict once someone approved or rejected it (even while
        this call ran: the write is refused if the announcement changed meanwhile).
        """
        store = self.store
        with store.r.pipeline(transaction=True) as pipe:
            pipe.watch(store.key_of(announcement_id))
            current = store.get(announcement_id)
            if current.state != "pending_approval":
                raise Conflict(f"announcement is {current.state}, not pending_approval")
            if current.author != author.name:
                raise Forbidden("only the author may change a pending announcement")
            fresh = self.draft(
                {**data, "incident_id": current.incident_id}, author, sanitise=sanitise
            )
            if fresh.published:  # the rewrite must wait for a person like the original
                raise Forbidden("an amended announcement must still wait for approval")
            amended = dataclasses.replace(
                current,
                title=fresh.title,
                body=fresh.body,
                severity=fresh.severity,
                status=fresh.status,
                audiences=fresh.audiences,
                channels=fresh.channels,
                translations=fresh.translations,
                next_update_at=fresh.next_update_at,
                components=fresh.components,
            )
            incident = store.get_incident(current.incident_id)
            pipe.multi()
            store.write(pipe, amended, incident, new=False)
            audit_entry(pipe, amended, author.name, "announcement.amended", ip)
            try:
                pipe.execute()
            except redis.WatchError as exc:
                raise Conflict("announcement was decided while it was being amended") from exc
        return amended

    def approve(
        self, announcement_id: str, approver: Principal, ip: str | None = None
    ) -> Announcement:
        """Publish a pending announcement; only a second person may (``four_eyes``)."""
        announcement = dataclasses.replace(
            self._pending(announcement_id, approver, "approve", ip),
            state="published",
            published_at=time.time(),
            approved_by=approver.name,
            decided_by_person=approver.person,
        )
        self._save(
            announcement,
            self.store.get_incident(announcement.incident_id),
            new=False,
            extra=lambda pipe: audit_entry(
                pipe,
                announcement,
                approver.name,
                "announcement.approved",
                ip,
                **person_of(approver),
            ),
            actor=approver.name,
            ip=ip,
        )
        return announcement

    def reject(
        self, announcement_id: str, approver: Principal, reason: str, ip: str | None = None
    ) -> Announcement:
        """Reject a pending announcement, keeping the reason."""
        problem = text_policy.problem(reason, BLOCK, max_chars=checks.REASON_MAX)
        if problem:
            raise Invalid({"reason": [problem]})
        reason = text_policy.normalise(reason)
        announcement = dataclasses.replace(
            self._pending(announcement_id, approver, "reject", ip),
            state="rejected",
            rejected_by=approver.name,
            decided_by_person=approver.person,
            reason=reason,
            rejected_at=time.time(),
        )
        self._save(
            announcement,
            self.store.get_incident(announcement.incident_id),
            new=False,
            extra=lambda pipe: audit_entry(
                pipe,
                announcement,
                approver.name,
                "announcement.rejected",
                ip,
                reason=reason,
                **person_of(approver),
            ),
            actor=approver.name,
            ip=ip,
        )
        return announcement

    def withdraw(
        self, announcement_id: str, principal: Principal, reason: str, ip: str | None = None
    ) -> Announcement:
        """Withdraw a published announcement, in the open: it leaves the banner and the
        current view and stays in the history with ``reason``. Admins only; once.

        The incident's facts are worked out again from what still stands
        (``incident_facts``). One transaction, refused if the announcement changed meanwhile.
        """
        if not principal.may("withdraw"):
            raise Forbidden(f"role {principal.role!r} may not withdraw")
        reason = withdrawal.checked_reason(reason)
        store = self.store
        store.get(announcement_id)  # NotFound before WATCH, also for ids no key could hold
        with store.r.pipeline(transaction=True) as pipe:
            pipe.watch(store.key_of(announcement_id))
            withdrawn = withdrawal.withdrawn(store.get(announcement_id), principal, reason)
            timeline = [
                withdrawn if a.id == withdrawn.id else a
                for a in store.timeline(withdrawn.incident_id)
            ]
            incident = incident_facts.facts(
                store.get_incident(withdrawn.incident_id), [a for a in timeline if a.published]
            )
            pipe.multi()
            store.write(pipe, withdrawn, incident, new=False)
            components.record_withdrawal(pipe, withdrawn, incident)
            audit_entry(
                pipe,
                withdrawn,
                principal.name,
                "announcement.withdrawn",
                ip,
                reason=reason,
                **person_of(principal),
            )
            try:
                pipe.execute()
            except redis.WatchError as exc:
                raise Conflict("announcement changed while it was being withdrawn") from exc
        self._after_commit(withdrawn, self.on_published, "after_publish")
        return withdrawn

    def _pending(
        self, announcement_id: str, approver: Principal, action: str, ip: str | None
    ) -> Announcement:
        """The pending announcement ``approver`` may decide on; Forbidden (audited) if not."""
        announcement = self.store.get(announcement_id)
        if announcement.state != "pending_approval":
            raise Conflict(f"announcement is {announcement.state}, not pending_approval")
        refusal = four_eyes.refusal(announcement, approver, action)
        if refusal:
            rule, message = refusal
            # Written on its own, not in a transaction with a change: nothing changes, but a
            # refused attempt is exactly what the audit log is for.
            audit_entry(
                self.store.r,
                announcement,
                approver.name,
                "approval.refused",
                ip,
                attempted=action,
                rule=rule,
                person=approver.person,
                author=announcement.author_person,
            )
            raise Forbidden(message)
        return announcement


def person_of(principal: Principal) -> dict[str, str]:
    """The person behind a token, for audit details (sessions: the name is the person)."""
    return {"person": principal.person} if principal.person != principal.name else {}


def audit_entry(
    pipe: Pipeline | redis.Redis,
    announcement: Announcement,
    actor: str,
    action: str,
    ip: str | None,
    **details: Any,
) -> None:
    audit.record(
        pipe,
        actor,
        action,
        ip=ip,
        incident_id=announcement.incident_id,
        announcement_id=announcement.id,
        title=announcement.title,
        severity=announcement.severity,
        **details,
    )
