"""Incidents and their append-only timelines of announcements, in Redis.

Reads only, plus ``write``, which adds an announcement's commands to a transaction the
announcement service builds (announcements.service is the one way to change them).
Nothing published is ever changed or deleted: a correction is a new announcement that
names the one it corrects.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis
from redis.client import Pipeline

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import NotFound

ANNOUNCEMENTS_KEY = "bc:anns"
INCIDENTS_KEY = "bc:incs"
ACTIVE_KEY = "bc:incs:active"  # open incidents, and resolved ones still showing "all clear"
BANNER_INCIDENTS_KEY = "bc:incs:banner"  # incidents with a published banner announcement
PENDING_KEY = "bc:anns:pending"  # waiting for a second person, by creation time


def _ann_key(announcement_id: str) -> str:
    return f"bc:ann:{announcement_id}"


def _inc_key(incident_id: str) -> str:
    return f"bc:inc:{incident_id}"


def _timeline_key(incident_id: str) -> str:
    return f"bc:inc:{incident_id}:timeline"


def _could_exist(some_id: str) -> bool:
    """Our ids are ASCII; one a client made up may hold a lone surrogate, which no Redis key
    can (it does not encode): no such thing, rather than a 500."""
    try:
        some_id.encode()
    except UnicodeEncodeError:
        return False
    return True


def new_id(prefix: str) -> str:
    """A new id: the time-ordered prefix keeps ids readable in logs and sortable."""
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

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def key_of(self, announcement_id: str) -> str:
        """The Redis key of an announcement (to WATCH it while changing it)."""
        return _ann_key(announcement_id)

    def get(self, announcement_id: str) -> Announcement:
        raw = self.r.get(_ann_key(announcement_id)) if _could_exist(announcement_id) else None
        if raw is None:
            raise NotFound(f"no announcement {announcement_id!r}")
        return Announcement.from_json(raw)

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        raw = self.r.get(_inc_key(incident_id)) if _could_exist(incident_id) else None
        if raw is None:
            raise NotFound(f"no incident {incident_id!r}")
        return json.loads(raw)

    def timeline(self, incident_id: str) -> list[Announcement]:
        """Every announcement of the incident, oldest first."""
        ids = [i.decode() for i in self.r.lrange(_timeline_key(incident_id), 0, -1)]
        raws = self.r.mget([_ann_key(i) for i in ids]) if ids else []
        return [Announcement.from_json(raw) for raw in raws if raw]

    def with_timelines(
        self, incident_ids: list[str]
    ) -> list[tuple[dict[str, Any], list[Announcement]]]:
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
        by_id = {a: Announcement.from_json(raw) for a, raw in zip(every, raws, strict=True) if raw}
        return [
            (json.loads(raw), [by_id[a] for a in ids if a in by_id])
            for raw, ids in zip(incidents, lists, strict=True)
            if raw
        ]

    def active_incident_ids(self) -> list[str]:
        """Open incidents with something published (and resolved ones still in "all clear")."""
        return sorted(raw.decode() for raw in self.r.smembers(ACTIVE_KEY))

    def incidents(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Incidents, most recently opened first."""
        ids = [i.decode() for i in self.r.zrevrange(INCIDENTS_KEY, offset, offset + limit - 1)]
        raws = self.r.mget([_inc_key(i) for i in ids]) if ids else []
        return int(self.r.zcard(INCIDENTS_KEY)), [json.loads(raw) for raw in raws if raw]

    def pending(self, limit: int = 100) -> list[Announcement]:
        """Announcements waiting for approval, newest first (the first ``limit``)."""
        return self.pending_page(0, limit)[1]

    def pending_page(self, offset: int, limit: int) -> tuple[int, list[Announcement]]:
        """How many announcements wait for approval, and a page of them, newest first.

        Newest first: a flood of old drafts must not push a new submission out of sight.
        """
        with self.r.pipeline(transaction=True) as pipe:  # the count and page agree
            pipe.zcard(PENDING_KEY)
            pipe.zrevrange(PENDING_KEY, offset, offset + limit - 1)
            total, members = pipe.execute()
        ids = [i.decode() for i in members]
        raws = self.r.mget([_ann_key(i) for i in ids]) if ids else []
        return int(total), [Announcement.from_json(raw) for raw in raws if raw]

    def pending_position(self, announcement_id: str) -> int | None:
        """Where a pending announcement stands in ``pending_page`` order (0: newest)."""
        if not _could_exist(announcement_id):
            return None
        rank = self.r.zrevrank(PENDING_KEY, announcement_id)
        return None if rank is None else int(rank)

    def write(
        self, pipe: Pipeline, announcement: Announcement, incident: dict[str, Any], new: bool
    ) -> None:
        """Add the commands that store an announcement and its incident to ``pipe``."""
        pipe.set(_ann_key(announcement.id), announcement.to_json())
        pipe.set(_inc_key(incident["id"]), json.dumps(incident))
        if announcement.published:
            pipe.sadd(ACTIVE_KEY, incident["id"])  # may show on the banner
            if announcement.reaches("banner"):
                pipe.sadd(BANNER_INCIDENTS_KEY, incident["id"])
            pipe.zrem(PENDING_KEY, announcement.id)
        elif announcement.state == "pending_approval":
            pipe.zadd(PENDING_KEY, {announcement.id: announcement.created_at})
        else:
            pipe.zrem(PENDING_KEY, announcement.id)
        if new:
            pipe.rpush(_timeline_key(incident["id"]), announcement.id)
            pipe.zadd(ANNOUNCEMENTS_KEY, {announcement.id: announcement.created_at})
            pipe.zadd(INCIDENTS_KEY, {incident["id"]: incident["opened_at"]}, nx=True)
