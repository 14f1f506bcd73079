"""Drills: rehearsing the plan with the team, kept apart from real incidents.

A drill runs one of the plan's scenarios (``[drills.scenarios]``): its alert enters through
the same monitoring path as a real alert (``web/hooks/drill_runner.py``), under an alert key
of its own (``alert_key``), so a drill and a real incident never share an incident. The
incident it opens carries the ``drill_id``; every announcement in it is an exercise
(``Announcement.exercise``), which reaches only the drill audiences and no public surface.

This module keeps the drill records: who started which scenario when, its incident, and
when and by whom it ended.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from broadcaster.domain import audit
from broadcaster.domain.announcements import new_id
from broadcaster.domain.drill_plan import Scenario
from broadcaster.domain.errors import Conflict, NotFound

_INDEX = "bc:drills"


def _key(drill_id: str) -> str:
    return f"bc:drill:{drill_id}"


def alert_key(scenario: Scenario, drill_id: str) -> str:
    """The drill's own alert group: namespaced per drill, never a real alert's key."""
    return f"drill:{drill_id}:{scenario.alert.key}"


class DrillStore:
    """Drill records in Redis, newest first."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def start(self, scenario: Scenario, actor: str, ip: str | None = None) -> dict[str, Any]:
        """Record a new drill of ``scenario`` (its incident follows once the alert is in)."""
        now = time.time()
        drill = {
            "id": new_id("drl"),
            "scenario": scenario.name,
            "description": scenario.description,
            "started_at": now,
            "started_by": actor,
            "incident_id": None,
            "ended_at": None,
            "ended_by": None,
            "resolve_after_minutes": scenario.resolve_after_minutes,
        }
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(_key(drill["id"]), json.dumps(drill))
            pipe.zadd(_INDEX, {drill["id"]: now})
            audit.record(
                pipe, actor, "drill.started", ip=ip, drill_id=drill["id"], scenario=scenario.name
            )
            pipe.execute()
        return drill

    def get(self, drill_id: str) -> dict[str, Any]:
        raw = self.r.get(_key(drill_id))
        if raw is None:
            raise NotFound(f"no drill {drill_id!r}")
        return json.loads(raw)

    def opened(self, drill_id: str, incident_id: str) -> dict[str, Any]:
        """Note the incident the drill's alert opened."""
        drill = {**self.get(drill_id), "incident_id": incident_id}
        self.r.set(_key(drill_id), json.dumps(drill))
        return drill

    def end(self, drill_id: str, actor: str, ip: str | None = None) -> dict[str, Any]:
        """Mark a drill ended (once); Conflict if it already was."""
        with self.r.pipeline(transaction=True) as pipe:
            pipe.watch(_key(drill_id))
            drill = self.get(drill_id)
            if drill["ended_at"] is not None:
                raise Conflict(f"drill {drill_id} already ended")
            drill.update(ended_at=time.time(), ended_by=actor)
            pipe.multi()
            pipe.set(_key(drill_id), json.dumps(drill))
            audit.record(
                pipe,
                actor,
                "drill.ended",
                ip=ip,
                incident_id=drill["incident_id"],
                drill_id=drill_id,
                scenario=drill["scenario"],
            )
            try:
                pipe.execute()
            except redis.WatchError as exc:
                raise Conflict(f"drill {drill_id} changed while it was being ended") from exc
        return drill

    def page(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(how many drills, the page of them newest first)."""
        ids = [i.decode() for i in self.r.zrevrange(_INDEX, offset, offset + limit - 1)]
        raws = self.r.mget([_key(i) for i in ids]) if ids else []
        return int(self.r.zcard(_INDEX)), [json.loads(raw) for raw in raws if raw]
