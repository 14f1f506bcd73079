"""Alert floods: how many new incidents a monitoring rule may open, and what it gathered.

A rule may open ``limit`` new incidents per sliding ``window``; the count lives in Redis
(one sorted set per rule, changed by one Lua call on Redis' own clock), so every web
process shares it and two alerts arriving at once cannot both take the last slot. Alerts
beyond the limit are gathered per rule (``Gathered``) into one "several alerts" draft for a
person, instead of opening incidents (and sending texts) of their own.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from broadcaster.domain.monitoring_rules import MonitoringRule

# KEYS: the rule's sorted set of openings. ARGV: limit, window (ms), member.
# Returns {1, openings in the window} when the opening is counted, {0, ms until a slot frees}
# when the rule is at its limit (nothing is counted then).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return {1, count + 1}
end
if limit <= 0 then return {0, window} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now)}
"""

GATHERED_KEPT = 90 * 86400  # a gathered draft may wait for a person this long


def rule_id(rule: MonitoringRule) -> str:
    """A rule's name in Redis: its matchers, so reordering the plan keeps the count."""
    matchers = json.dumps([rule.match, rule.match_re], sort_keys=True)
    return hashlib.sha256(matchers.encode()).hexdigest()[:16]


@dataclass
class NewIncidentLimit:
    """New incidents per rule in any ``window`` seconds, counted for every process at once."""

    r: redis.Redis
    window: float

    def __post_init__(self) -> None:
        self._take = self.r.register_script(_TAKE)

    def take(self, rule: str, limit: int) -> bool:
        """Count one new incident for ``rule`` if it has opened fewer than ``limit``."""
        window_ms = max(1, int(self.window * 1000))
        opening = uuid.uuid4().hex  # each opening its own member, even in the same millisecond
        granted, _ = self._take([f"bc:mon:opened:{rule}"], [limit, window_ms, opening])
        return bool(int(granted))


class Gathered:
    """The alerts a rule gathered beyond its limit, and the draft that lists them.

    ``record`` holds the draft (``announcement_id``, ``incident_id``, ``last_at``);
    ``alerts`` one entry per alert group, the latest status of each. Callers hold ``lock``.
    """

    def __init__(self, r: redis.Redis, rule: str) -> None:
        self.r = r
        self._record = f"bc:mon:flood:{rule}"
        self._alerts = f"bc:mon:flood:{rule}:alerts"
        self.lock_name = f"bc:mon:flood:{rule}:lock"

    def record(self) -> dict[str, str]:
        """The current draft's ids and when it last gathered an alert (empty: none yet)."""
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self._record).items()}

    def restart(self) -> None:
        """Forget the gathered alerts: the draft that listed them was decided."""
        self.r.delete(self._alerts)

    def add(self, group: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Record (or update) one alert group's entry; every entry, oldest first."""
        known = self.r.hget(self._alerts, group)
        if known:  # keep when it was first gathered, take the latest status and text
            entry = {**entry, "at": json.loads(known)["at"]}
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self._alerts, group, json.dumps(entry))
            pipe.expire(self._alerts, GATHERED_KEPT)
            pipe.hgetall(self._alerts)
            *_, raws = pipe.execute()
        return sorted((json.loads(v) for v in raws.values()), key=lambda e: e["at"])

    def save(self, announcement_id: str, incident_id: str) -> None:
        """Remember the draft now listing the alerts."""
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._record,
                mapping={
                    "announcement_id": announcement_id,
                    "incident_id": incident_id,
                    "last_at": str(time.time()),
                },
            )
            pipe.expire(self._record, GATHERED_KEPT)
            pipe.execute()
