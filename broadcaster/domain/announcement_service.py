"""The one way in for an announcement: create, follow up, correct; and, through
``announcement_decisions.Decisions``, amend, approve, reject and withdraw.

Every door (the API, the admin pages, monitoring) calls this service; none of them builds
an announcement or writes one itself. It validates against the plan and the text policy,
stores the announcement, its incident, its audit entries, the idempotency record and the
plan job in one Redis transaction (so an accepted announcement is never lost between
storing and enqueuing), and then lets the public documents refresh.

What it needs from the layers above comes in when it is built (``enqueue_plan``,
``on_published``, ``on_pending``), so the domain imports neither RQ, the renderer nor
the delivery of the approvers' notice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.client import Pipeline

from broadcaster.domain import (
    all_clear,
    components,
)
from broadcaster.domain import announcement_checks as checks
from broadcaster.domain import idempotency as idem
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcement_decisions import Decisions, audit_entry, person_of
from broadcaster.domain.announcements import AnnouncementStore, new_id
from broadcaster.domain.errors import Conflict, Forbidden, Invalid, NotFound
from broadcaster.domain.incidents import closes
from broadcaster.domain.plan import Plan
from broadcaster.domain.principals import Principal
from broadcaster.infra import metrics

log = logging.getLogger(__name__)

EnqueuePlan = Callable[[Pipeline, str], None]
OnPublished = Callable[[Announcement], None]
OnPending = Callable[[Announcement], None]
KeepPromise = Callable[[Pipeline, Announcement], None]


class AnnouncementService(Decisions):
    """Announcements and incidents: the only code that changes them."""

    def __init__(
        self,
        store: AnnouncementStore,
        plan: Plan,
        *,
        enqueue_plan: EnqueuePlan,
        on_published: OnPublished,
        max_body_bytes: int,
        on_pending: OnPending | None = None,
        keep_promise: KeepPromise | None = None,
    ) -> None:
        self.store = store
        self.plan = plan
        self.enqueue_plan = enqueue_plan
        # Schedules the reminder for a published promise, in the publishing transaction.
        self.keep_promise = keep_promise
        self.on_published = on_published
        # A new announcement that waits: tell the approvers (delivery/approver_notices.py).
        self.on_pending = on_pending or (lambda announcement: None)
        self.max_body_bytes = max_body_bytes

    # Reads, so callers need one object for announcements.
    def get(self, announcement_id: str) -> Announcement:
        return self.store.get(announcement_id)

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        return self.store.get_incident(incident_id)

    def active_incident_ids(self) -> list[str]:
        return self.store.active_incident_ids()

    def timeline(self, incident_id: str) -> list[Announcement]:
        return self.store.timeline(incident_id)

    def with_timelines(self, ids: list[str]) -> list[tuple[dict[str, Any], list[Announcement]]]:
        return self.store.with_timelines(ids)

    def incidents(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        return self.store.incidents(offset, limit)

    def pending(self, limit: int = 100) -> list[Announcement]:
        return self.store.pending(limit)

    def pending_page(self, offset: int, limit: int) -> tuple[int, list[Announcement]]:
        return self.store.pending_page(offset, limit)

    def pending_position(self, announcement_id: str) -> int | None:
        return self.store.pending_position(announcement_id)

    def draft(
        self,
        data: dict[str, Any],
        author: Principal,
        preapproved: bool = False,
        sanitise: bool = False,
    ) -> Announcement:
        """The announcement ``data`` describes, validated but not stored (also the preview).

        ``sanitise`` (monitoring) fits the text to the policy instead of refusing it.
        Raises Invalid with every problem by field.
        """
        if sanitise:
            data = checks.sanitise(data, self.max_body_bytes)
        data = checks.normalised(data)
        errors = checks.problems(data, self.plan, self.max_body_bytes)
        if errors:
            raise Invalid(errors)
        now = time.time()
        severity = data["severity"]
        channels = list(data.get("channels") or self.plan.channels_by_severity.get(severity, ()))
        if closes(data.get("status")):  # email/SMS: exactly where the incident reached
            channels = all_clear.resolution_channels(self.store, data.get("incident_id"), channels)
        # A holding statement in the plan was approved with the plan: it goes out at once.
        needs_approval = not preapproved and (
            severity in self.plan.approval_required or not author.may("publish")
        )
        # An admin may skip the second person, but only on the record, with a reason.
        bypassed = needs_approval and bool(data.get("bypass_reason")) and author.may("bypass")
        needs_approval = needs_approval and not bypassed
        return Announcement(
            id=new_id("ann"),
            incident_id=data.get("incident_id") or new_id("inc"),
            title=data["title"],
            body=data["body"],
            severity=severity,
            status=data.get("status") or "investigating",
            audiences=sorted(set(data["audiences"])),
            channels=channels,
            translations=data.get("translations") or {},
            corrects=data.get("corrects"),
            next_update_at=checks.timestamp(data.get("next_update_at")),
            need=data.get("need") or None,
            author=author.name,
            author_person=author.person,
            state="pending_approval" if needs_approval else "published",
            created_at=now,
            published_at=None if needs_approval else now,
            bypass_reason=data["bypass_reason"] if bypassed else None,
            preapproved=preapproved,
            components=dict(data.get("components") or {}),
        )

    def create(
        self,
        data: dict[str, Any],
        author: Principal,
        *,
        idempotency: tuple[str, str] | None = None,
        preapproved: bool = False,
        sanitise: bool = False,
        ip: str | None = None,
        drill_id: str | None = None,
    ) -> Announcement:
        """Store a new announcement (opening an incident if needed); publish it if allowed.

        ``data`` may name an ``incident_id`` (a follow-up) or ``corrects`` (a correction).
        ``idempotency`` is (redis key, request fingerprint): its final record is written
        in the same transaction as the announcement. ``drill_id`` (only a drill's alert
        passes it) opens an exercise incident; every follow-up of one is an exercise too.
        """
        if data.get("bypass_reason") and not author.may("bypass"):
            raise Forbidden(f"role {author.role!r} may not publish without approval")
        incident_id = data.get("incident_id")
        corrects = data.get("corrects")
        if corrects:
            corrected = self._referenced("corrects", corrects)
            if not corrected.published:
                raise Conflict(f"announcement {corrects} is not published; edit it instead")
            if incident_id and corrected.incident_id != incident_id:
                raise Conflict(f"announcement {corrects} belongs to another incident")
            incident_id = corrected.incident_id
        incident = self._incident(incident_id) if incident_id else None
        inherited = (incident or {}).get("need")
        if data.get("need") is None and inherited in checks.route_needs(
            self.plan, list(data.get("audiences") or [])
        ):
            # A follow-up is about the same need as its incident, unless it says otherwise.
            data = {**data, "need": inherited}
        announcement = self.draft(
            {**data, "incident_id": incident_id}, author, preapproved, sanitise
        )
        if corrects:  # every rendering names the corrected update by its time
            announcement = dataclasses.replace(
                announcement, corrects_published_at=corrected.published_at
            )
        # Decided by the incident, never by the request: nothing can leave a drill.
        drill_id = (incident or {}).get("drill_id") or drill_id
        if drill_id:
            announcement = dataclasses.replace(announcement, exercise=True)
        if incident is None:
            incident = {
                "id": announcement.incident_id,
                "title": announcement.title,
                "opened_at": announcement.created_at,
                "resolved_at": None,
                **({"drill_id": drill_id, "exercise": True} if drill_id else {}),
            }
        result = {"announcement_id": announcement.id, "state": announcement.state}

        def extra(pipe: Pipeline) -> None:
            if idempotency:
                idem.record(pipe, idempotency[0], idempotency[1], result)
            audit_entry(
                pipe, announcement, author.name, "announcement.created", ip, **person_of(author)
            )
            if announcement.bypass_reason:
                audit_entry(
                    pipe,
                    announcement,
                    author.name,
                    "announcement.bypassed",
                    ip,
                    reason=announcement.bypass_reason,
                )

        self._save(announcement, incident, new=True, extra=extra, actor=author.name, ip=ip)
        return announcement

    def follow_up(
        self, incident_id: str, data: dict[str, Any], author: Principal, **options: Any
    ) -> Announcement:
        """A new announcement in an existing incident's timeline."""
        return self.create({**data, "incident_id": incident_id}, author, **options)

    def correct(
        self, announcement_id: str, data: dict[str, Any], author: Principal, **options: Any
    ) -> Announcement:
        """A new announcement that corrects a published one (which stays as it was)."""
        return self.create({**data, "corrects": announcement_id}, author, **options)

    def _referenced(self, field: str, announcement_id: str) -> Announcement:
        # A reference to nothing is bad input (422), not a missing resource (404).
        try:
            return self.store.get(announcement_id)
        except NotFound as exc:
            raise Invalid({field: [str(exc)]}) from exc

    def _incident(self, incident_id: str) -> dict[str, Any]:
        try:
            return self.store.get_incident(incident_id)
        except NotFound as exc:
            raise Invalid({"incident_id": [str(exc)]}) from exc

    def _save(
        self,
        announcement: Announcement,
        incident: dict[str, Any],
        new: bool,
        extra: Callable[[Pipeline], None],
        actor: str,
        ip: str | None,
    ) -> None:
        """Write announcement + incident and, if published, enqueue the fan-out: one MULTI."""
        if announcement.published:
            # The incident shows the latest published facts.
            incident.update(
                severity=announcement.severity,
                status=announcement.status,
                updated_at=announcement.published_at,
            )
            if announcement.need:
                incident["need"] = announcement.need
            if closes(announcement.status):
                incident["resolved_at"] = incident.get("resolved_at") or announcement.published_at
            else:
                incident["resolved_at"] = None
            incident["withdrawn_at"] = None  # something stands again
            incident["components"] = components.touched(incident, announcement)
        incident.setdefault("severity", announcement.severity)
        incident.setdefault("status", announcement.status)
        incident.setdefault("updated_at", announcement.created_at)
        with self.store.r.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit MULTI: RQ's enqueue joins it instead of starting its own
            self.store.write(pipe, announcement, incident, new)
            if announcement.published:
                self.enqueue_plan(pipe, announcement.id)
                if announcement.next_update_at and self.keep_promise:
                    self.keep_promise(pipe, announcement)
                audit_entry(pipe, announcement, actor, "announcement.published", ip)
                components.record(pipe, announcement, incident)
            extra(pipe)
            pipe.execute()
        if announcement.published:
            self._after_commit(announcement, self.on_published, "after_publish")
        elif new and announcement.state == "pending_approval":
            self._after_commit(announcement, self.on_pending, "after_pending")

    def _after_commit(self, announcement: Announcement, then: OnPublished, surface: str) -> None:
        # Committed is committed: the answer must say so, whatever refreshing the public
        # documents or queueing the approvers' notice does. A client told "500" would retry
        # and send a second blast (or submit a second draft).
        try:
            then(announcement)
        except Exception:
            log.exception("stored %s, but %s failed", announcement.id, surface)
            try:
                metrics.count(self.store.r, "render_failures", surface)
            except redis.RedisError:
                log.warning("could not count the failed %s of %s", surface, announcement.id)
