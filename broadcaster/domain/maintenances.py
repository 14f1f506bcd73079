"""Scheduled maintenance: the plan of one maintenance, its checks and its record in Redis.

A maintenance is an incident whose announcements are its transitions (announced,
reminded, in progress, completed — or extended, ended early, cancelled), every one
published through the announcement service. What the incident cannot hold lives in a
small record here: when it starts and ends, the reminders, where it stands (``state``) and
a ``version`` bumped on every change of the plan (extend, end early, cancel). The jobs
that drive it (``delivery/maintenances.py``) carry the version they were scheduled for, so
a job of an older plan does nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from broadcaster.domain import text_policy
from broadcaster.domain.announcements import new_id
from broadcaster.domain.errors import Conflict, Invalid, NotFound
from broadcaster.domain.incidents import SEVERITIES
from broadcaster.domain.plan import Plan
from broadcaster.domain.text_policy import BLOCK, LINE, TITLE_MAX
from channels import CHANNELS

STATES = ("scheduled", "in_progress", "completed", "cancelled")
OPEN = ("scheduled", "in_progress")
# A maintenance lies at most a year ahead and lasts at most 30 days: a date beyond that
# is a typo, and would keep a job waiting in Redis for years.
AHEAD_MAX = 366 * 24 * 3600
LENGTH_MAX = 30 * 24 * 3600
MAX_REMINDERS = 10
# The transition titles add a few words ("Maintenance in progress: "): leave them room.
TITLE_ROOM = TITLE_MAX - 60
INDEX_KEY = "bc:maint:all"  # maintenance id → starts_at
BY_INCIDENT_KEY = "bc:maint:by-incident"  # incident id → maintenance id
LOCK_SECONDS = 60


def key_of(maintenance_id: str) -> str:
    return f"bc:maint:{maintenance_id}"


@dataclass(frozen=True)
class Maintenance:
    """One maintenance's plan and where it stands."""

    id: str
    title: str
    body: str
    starts_at: float
    ends_at: float
    severity: str
    audiences: list[str]
    channels: list[str]
    components: list[str]
    reminders: list[float]  # minutes before starts_at
    author: str
    created_at: float
    state: str = "scheduled"
    version: int = 1
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    incident_id: str | None = None
    announcement_id: str | None = None  # the first one: published once approved
    reminded: list[float] = field(default_factory=list)  # reminders sent (minutes)
    started_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None  # why it was cancelled

    @property
    def open(self) -> bool:
        return self.state in OPEN

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Maintenance:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def problems(data: dict[str, Any], plan: Plan, now: float | None = None) -> dict[str, list[str]]:
    """Every way a maintenance request breaks the rules, by field (for one 422)."""
    now = time.time() if now is None else now
    errors: dict[str, list[str]] = {}

    def add(key: str, problem: str | None) -> None:
        if problem:
            errors.setdefault(key, []).append(problem)

    title = data.get("title")
    add(
        "title",
        text_policy.problem(title, LINE, max_chars=TITLE_ROOM)
        if isinstance(title, str)
        else "must be text",
    )
    if not isinstance(data.get("body"), str):
        add("body", "must be text")
    for locale, words in (data.get("translations") or {}).items():
        if isinstance(words, dict) and isinstance(words.get("title"), str):
            problem = text_policy.problem(words["title"], LINE, max_chars=TITLE_ROOM)
            add(f"translations.{locale}.title", problem)
    starts, ends = data.get("starts_at"), data.get("ends_at")
    if not isinstance(starts, float | int):
        add("starts_at", "must be a time (ISO 8601)")
    elif starts <= now:
        add("starts_at", "must lie in the future")
    elif starts > now + AHEAD_MAX:
        add("starts_at", "must lie within a year")
    if not isinstance(ends, float | int):
        add("ends_at", "must be a time (ISO 8601)")
    elif isinstance(starts, float | int):
        add("ends_at", ends_problem(starts, ends))
    if data.get("severity") not in SEVERITIES:
        add("severity", f"must be one of: {', '.join(SEVERITIES)}")
    audiences = list(data.get("audiences") or [])
    if not audiences:
        add("audiences", "name at least one audience")
    for name in audiences:
        if name not in plan.audiences:
            add("audiences", f"unknown audience {name!r} (known: {', '.join(plan.audiences)})")
            break
    for name in data.get("channels") or []:
        if name not in CHANNELS:
            add("channels", f"unknown channel {name!r} (known: {', '.join(CHANNELS)})")
            break
    known = [c.id for c in plan.components]
    for name in data.get("components") or []:
        if name not in known:
            listed = ", ".join(known) or "none: the plan declares none"
            add("components", f"unknown component {name!r} (known: {listed})")
            break
    reminders = data.get("reminders_minutes_before") or []
    if len(reminders) > MAX_REMINDERS:
        add("reminders_minutes_before", f"at most {MAX_REMINDERS} reminders")
    for minutes in reminders:
        if not isinstance(minutes, float | int) or not 0 < minutes <= AHEAD_MAX / 60:
            add("reminders_minutes_before", "each must be a number of minutes above 0")
            break
        if isinstance(starts, float | int) and starts - minutes * 60 <= now:
            add(
                "reminders_minutes_before",
                f"{minutes:g} minutes before the start is already past",
            )
            break
    return errors


def ends_problem(starts: float, ends: float) -> str | None:
    """What is wrong with ``ends`` for a maintenance starting at ``starts``."""
    if ends <= starts:
        return "must lie after starts_at"
    if ends - starts > LENGTH_MAX:
        return "a maintenance lasts at most 30 days"
    return None


def new(data: dict[str, Any], channels: list[str], author: str) -> Maintenance:
    """A new maintenance from a checked request."""
    return Maintenance(
        id=new_id("mnt"),
        title=text_policy.normalise(data["title"]),
        body=text_policy.normalise(data["body"]),
        starts_at=float(data["starts_at"]),
        ends_at=float(data["ends_at"]),
        severity=data["severity"],
        audiences=sorted(set(data["audiences"])),
        channels=channels,
        components=list(dict.fromkeys(data.get("components") or [])),
        reminders=sorted(
            set(float(m) for m in data.get("reminders_minutes_before") or []), reverse=True
        ),
        author=author,
        created_at=time.time(),
        translations=dict(data.get("translations") or {}),
    )


def get(r: redis.Redis, maintenance_id: str) -> Maintenance:
    raw = r.get(key_of(maintenance_id)) if len(maintenance_id) < 100 else None
    if raw is None:
        raise NotFound(f"no maintenance {maintenance_id}")
    return Maintenance.from_dict(json.loads(raw))


def save(r: redis.Redis | redis.client.Pipeline, maintenance: Maintenance) -> None:
    """Write the record and its indexes (in the caller's pipeline, if given)."""
    r.set(key_of(maintenance.id), json.dumps(maintenance.to_dict()))
    r.zadd(INDEX_KEY, {maintenance.id: maintenance.starts_at})
    if maintenance.incident_id:
        r.hset(BY_INCIDENT_KEY, maintenance.incident_id, maintenance.id)


def page(r: redis.Redis, offset: int, limit: int) -> tuple[int, list[Maintenance]]:
    """Maintenances, the latest start first."""
    ids = [i.decode() for i in r.zrevrange(INDEX_KEY, offset, offset + limit - 1)]
    raws = r.mget([key_of(i) for i in ids]) if ids else []
    found = [Maintenance.from_dict(json.loads(raw)) for raw in raws if raw]
    return int(r.zcard(INDEX_KEY)), found


def of_incidents(r: redis.Redis, incident_ids: list[str]) -> dict[str, Maintenance]:
    """incident id → its maintenance, for those incidents that are maintenances."""
    if not incident_ids:
        return {}
    ids = r.hmget(BY_INCIDENT_KEY, incident_ids)
    wanted = {inc: mid.decode() for inc, mid in zip(incident_ids, ids, strict=True) if mid}
    if not wanted:
        return {}
    raws = r.mget([key_of(m) for m in wanted.values()])
    return {
        inc: Maintenance.from_dict(json.loads(raw))
        for inc, raw in zip(wanted, raws, strict=True)
        if raw
    }


@contextmanager
def changing(r: redis.Redis, maintenance_id: str, wait: float = 10.0) -> Iterator[None]:
    """Hold the maintenance's lock while one change (a person's or a job's) runs.

    A change reads the record, publishes an announcement and writes the record back; two
    at once (a cancel while the start job runs) would each see the other's old state.
    """
    key = f"{key_of(maintenance_id)}:lock"
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while not r.set(key, token, nx=True, ex=LOCK_SECONDS):
        if time.monotonic() > deadline:
            raise Conflict("the maintenance is being changed: try again in a moment")
        time.sleep(0.05)
    try:
        yield
    finally:
        if r.get(key) == token.encode():
            r.delete(key)


def changed(maintenance: Maintenance, **changes: Any) -> Maintenance:
    """The maintenance with ``changes`` and its version bumped: older jobs do nothing."""
    return dataclasses.replace(maintenance, version=maintenance.version + 1, **changes)


def invalid_reason(reason: Any) -> None:
    """Raise Invalid unless ``reason`` is an acceptable cancellation reason."""
    problem = (
        text_policy.problem(reason, BLOCK, max_chars=2000)
        if isinstance(reason, str)
        else "must be text"
    )
    if problem:
        raise Invalid({"reason": [problem]})
