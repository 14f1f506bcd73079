"""Incidents and their append-only timelines of announcements.

Nothing published is ever changed or deleted: a correction is a new announcement that
names the one it corrects. Storing an announcement and enqueuing its fan-out happen in one
Redis transaction, so an accepted announcement is never lost between the two.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from redis.client import Pipeline

from broadcaster.delivery import queues
from broadcaster.domain import audit
from broadcaster.domain import idempotency as idem
from broadcaster.domain.plan import Plan
from broadcaster.domain.tokens import Principal

ANNOUNCEMENTS_KEY = "bc:anns"
INCIDENTS_KEY = "bc:incs"
ACTIVE_KEY = "bc:incs:active"  # open incidents, and resolved ones still showing "all clear"
BANNER_INCIDENTS_KEY = "bc:incs:banner"  # incidents with a published banner announcement
PENDING_KEY = "bc:anns:pending"  # waiting for a second person, by creation time


class StateConflict(Exception):
    """The request does not fit the current state (HTTP 409)."""


class NotFound(Exception):
    """No such announcement or incident (HTTP 404)."""


def _ann_key(announcement_id: str) -> str:
    return f"bc:ann:{announcement_id}"


def _inc_key(incident_id: str) -> str:
    return f"bc:inc:{incident_id}"


def _timeline_key(incident_id: str) -> str:
    return f"bc:inc:{incident_id}:timeline"


def _new_id(prefix: str) -> str:
    # Time-ordered prefix keeps ids readable in logs and sortable by creation.
    return f"{prefix}_{int(time.time() * 1000):x}{uuid.uuid4().hex[:6]}"


def created_between(r: redis.Redis, after: float, until: float | str) -> list[tuple[str, float]]:
    """(id, created_at) of announcements created after ``after`` up to ``until``, oldest first."""
    found = r.zrangebyscore(ANNOUNCEMENTS_KEY, f"({after}", until, withscores=True)
    return [(member.decode(), score) for member, score in found]


def states_of(r: redis.Redis, announcement_ids: list[str]) -> list[str]:
    """The state of each announcement that exists (for metrics), 500 per round trip."""
    states: list[str] = []
    for start in range(0, len(announcement_ids), 500):
        chunk = announcement_ids[start : start + 500]
        raws = r.mget([_ann_key(i) for i in chunk])
        states += [json.loads(raw).get("state", "unknown") for raw in raws if raw]
    return states


class AnnouncementStore:
    """Announcements and incidents in Redis."""

    def __init__(self, r: redis.Redis, plan: Plan) -> None:
        self.r = r
        self.plan = plan

    def get(self, announcement_id: str) -> dict[str, Any]:
        raw = self.r.get(_ann_key(announcement_id))
        if raw is None:
            raise NotFound(f"no announcement {announcement_id!r}")
        return json.loads(raw)

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        raw = self.r.get(_inc_key(incident_id))
        if raw is None:
            raise NotFound(f"no incident {incident_id!r}")
        return json.loads(raw)

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        """Every announcement of the incident, oldest first."""
        ids = [i.decode() for i in self.r.lrange(_timeline_key(incident_id), 0, -1)]
        raws = self.r.mget([_ann_key(i) for i in ids]) if ids else []
        return [json.loads(raw) for raw in raws if raw]

    def with_timelines(
        self, incident_ids: list[str]
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """(incident, timeline) for many incidents in three round trips, not three per incident."""
        if not incident_ids:
            return []
        incidents = self.r.mget([_inc_key(i) for i in incident_ids])
        pipe = self.r.pipeline(transaction=False)
        for incident_id in incident_ids:
            pipe.lrange(_timeline_key(incident_id), 0, -1)
        lists = [[a.decode() for a in ids] for ids in pipe.execute()]
        every = [a for ids in lists for a in ids]
        raws = self.r.mget([_ann_key(a) for a in every]) if every else []
        by_id = {a: json.loads(raw) for a, raw in zip(every, raws, strict=True) if raw}
        return [
            (json.loads(raw), [by_id[a] for a in ids if a in by_id])
            for raw, ids in zip(incidents, lists, strict=True)
            if raw
        ]

    def incidents(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Incidents, most recently opened first."""
        ids = [i.decode() for i in self.r.zrevrange(INCIDENTS_KEY, offset, offset + limit - 1)]
        raws = self.r.mget([_inc_key(i) for i in ids]) if ids else []
        return int(self.r.zcard(INCIDENTS_KEY)), [json.loads(raw) for raw in raws if raw]

    def draft(
        self,
        data: dict[str, Any],
        author: Principal,
        incident_id: str | None = None,
        preapproved: bool = False,
    ) -> dict[str, Any]:
        """The announcement a request describes, not yet stored (also used by preview)."""
        now = time.time()
        channels = data.get("channels") or list(
            self.plan.channels_by_severity.get(data["severity"], ())
        )
        # A holding statement in the plan was approved with the plan: it goes out at once.
        needs_approval = not preapproved and (
            data["severity"] in self.plan.approval_required or not author.may("publish")
        )
        # An admin may skip the second person, but only on the record, with a reason.
        bypassed = needs_approval and bool(data.get("bypass_reason")) and author.may("bypass")
        needs_approval = needs_approval and not bypassed
        return {
            "id": _new_id("ann"),
            "incident_id": incident_id or _new_id("inc"),
            "title": data["title"],
            "body": data["body"],
            "severity": data["severity"],
            "status": data["status"],
            "audiences": sorted(set(data["audiences"])),
            "channels": channels,
            "translations": data.get("translations") or {},
            "corrects": data.get("corrects"),
            "next_update_at": data["next_update_at"].timestamp()
            if data.get("next_update_at")
            else None,
            "author": author.name,
            "state": "pending_approval" if needs_approval else "published",
            "created_at": now,
            "published_at": None if needs_approval else now,
            "approved_by": None,
            "rejected_by": None,
            "reason": None,
            "bypass_reason": data["bypass_reason"] if bypassed else None,
        }

    def create(
        self,
        data: dict[str, Any],
        author: Principal,
        idempotency: tuple[str, str] | None = None,
        preapproved: bool = False,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """Store a new announcement (opening an incident if needed); publish it if allowed.

        ``idempotency`` is (redis key, request fingerprint): the key's final record is
        written in the same transaction as the announcement, and so are its audit entries.
        Raises PermissionError when someone without the right asks to bypass approval.
        """
        if data.get("bypass_reason") and not author.may("bypass"):
            raise PermissionError(f"role {author.role!r} may not publish without approval")
        incident_id = data.get("incident_id")
        corrects = data.get("corrects")
        if corrects:
            corrected = self.get(corrects)
            if corrected["state"] != "published":
                raise StateConflict(f"announcement {corrects} is not published; edit it instead")
            if incident_id and corrected["incident_id"] != incident_id:
                raise StateConflict(f"announcement {corrects} belongs to another incident")
            incident_id = corrected["incident_id"]
        incident = self.get_incident(incident_id) if incident_id else None

        announcement = self.draft(data, author, incident["id"] if incident else None, preapproved)
        if incident is None:
            incident = {
                "id": announcement["incident_id"],
                "title": data["title"],
                "opened_at": announcement["created_at"],
                "resolved_at": None,
            }
        result = {"announcement_id": announcement["id"], "state": announcement["state"]}

        def extra(pipe: Pipeline) -> None:
            if idempotency:
                idem.record(pipe, idempotency[0], idempotency[1], result)
            self._audit(pipe, announcement, author.name, "announcement.created", ip)
            if announcement["bypass_reason"]:
                self._audit(
                    pipe,
                    announcement,
                    author.name,
                    "announcement.bypassed",
                    ip,
                    reason=announcement["bypass_reason"],
                )

        self._save(announcement, incident, new=True, extra=extra, actor=author.name, ip=ip)
        return announcement

    def approve(
        self, announcement_id: str, approver: Principal, ip: str | None = None
    ) -> dict[str, Any]:
        """Publish a pending announcement; the author may never approve their own."""
        announcement = self._pending(announcement_id, approver)
        announcement.update(state="published", published_at=time.time(), approved_by=approver.name)
        self._save(
            announcement,
            self.get_incident(announcement["incident_id"]),
            new=False,
            extra=lambda pipe: self._audit(
                pipe, announcement, approver.name, "announcement.approved", ip
            ),
            actor=approver.name,
            ip=ip,
        )
        return announcement

    def reject(
        self, announcement_id: str, approver: Principal, reason: str, ip: str | None = None
    ) -> dict[str, Any]:
        """Reject a pending announcement, keeping the reason."""
        announcement = self._pending(announcement_id, approver)
        announcement.update(
            state="rejected", rejected_by=approver.name, reason=reason, rejected_at=time.time()
        )
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(_ann_key(announcement_id), json.dumps(announcement))
            pipe.zrem(PENDING_KEY, announcement_id)
            self._audit(
                pipe, announcement, approver.name, "announcement.rejected", ip, reason=reason
            )
            pipe.execute()
        return announcement

    def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        """Announcements waiting for approval, oldest first."""
        ids = [i.decode() for i in self.r.zrange(PENDING_KEY, 0, limit - 1)]
        raws = self.r.mget([_ann_key(i) for i in ids]) if ids else []
        return [json.loads(raw) for raw in raws if raw]

    @staticmethod
    def _audit(
        pipe: Pipeline,
        announcement: dict[str, Any],
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
            incident_id=announcement["incident_id"],
            announcement_id=announcement["id"],
            title=announcement["title"],
            severity=announcement["severity"],
            **details,
        )

    def _pending(self, announcement_id: str, approver: Principal) -> dict[str, Any]:
        announcement = self.get(announcement_id)
        if announcement["state"] != "pending_approval":
            raise StateConflict(f"announcement is {announcement['state']}, not pending_approval")
        if announcement["author"] == approver.name:
            raise PermissionError("the author cannot approve or reject their own announcement")
        return announcement

    def _save(
        self,
        announcement: dict[str, Any],
        incident: dict[str, Any],
        new: bool,
        extra: Callable[[Pipeline], None] | None = None,
        actor: str = "",
        ip: str | None = None,
    ) -> None:
        """Write announcement + incident and, if published, enqueue the fan-out: one MULTI."""
        published = announcement["state"] == "published"
        if published:
            # The incident shows the latest published facts.
            incident.update(
                severity=announcement["severity"],
                status=announcement["status"],
                updated_at=announcement["published_at"],
            )
            if announcement["status"] == "resolved":
                incident["resolved_at"] = (
                    incident.get("resolved_at") or announcement["published_at"]
                )
            else:
                incident["resolved_at"] = None
        incident.setdefault("severity", announcement["severity"])
        incident.setdefault("status", announcement["status"])
        incident.setdefault("updated_at", announcement["created_at"])
        with self.r.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit MULTI: RQ's enqueue joins it instead of starting its own
            pipe.set(_ann_key(announcement["id"]), json.dumps(announcement))
            pipe.set(_inc_key(incident["id"]), json.dumps(incident))
            if published:
                pipe.sadd(ACTIVE_KEY, incident["id"])  # may show on the banner
                if "banner" in announcement["channels"]:
                    pipe.sadd(BANNER_INCIDENTS_KEY, incident["id"])
                pipe.zrem(PENDING_KEY, announcement["id"])
            elif announcement["state"] == "pending_approval":
                pipe.zadd(PENDING_KEY, {announcement["id"]: announcement["created_at"]})
            if new:
                pipe.rpush(_timeline_key(incident["id"]), announcement["id"])
                pipe.zadd(ANNOUNCEMENTS_KEY, {announcement["id"]: announcement["created_at"]})
                pipe.zadd(INCIDENTS_KEY, {incident["id"]: incident["opened_at"]}, nx=True)
            if published:
                queues.enqueue_plan(self.r, announcement["id"], pipeline=pipe)
                self._audit(pipe, announcement, actor, "announcement.published", ip)
            if extra:
                extra(pipe)
            pipe.execute()
