"""The delivery ledger: one record per (announcement, channel, subscriber).

States move ``queued → sending → sent → delivered`` or end in ``failed`` / ``skipped``.
Every move is one atomic Lua call that also keeps the per-channel counts, so a recipient
is *claimed* (``queued → sending``) before the provider call and a re-run batch skips anyone
already claimed or sent: nobody is texted twice.

A claim is a *lease*: it records until when its holder answers for it, and the holder
renews it while it works. A worker killed mid-send leaves claims whose lease runs out; the
batch's re-run (RQ requeues the abandoned job) takes those over, so a crash strands nobody
and re-sends only what was in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from broadcaster.domain.ledger_scripts import CLAIM, RENEW, TRANSITION

# delivered / undelivered / bounced / dropped come from provider receipts (receipts.py).
STATES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "bounced",
    "dropped",
    "failed",
    "skipped",
)

# What a delivery record shows of a call's callbacks: the final status, who answered, how
# long, whether a machine got the short message, the key pressed.
CALL_DETAILS = ("receipt", "answered_by", "duration", "left_message", "pressed", "pressed_at")

DEFAULT_LEASE = 300.0  # seconds; holders that renew (batch jobs) use a much shorter one


def staff_ledger_id(announcement_id: str) -> str:
    """The ledger id of an announcement's staff deliveries (the brief staff get first).

    Apart from the customers' ledger, so the brief never counts as a customer delivery; the
    brief's messages carry this id, so provider receipts move the staff deliveries.
    """
    return f"{announcement_id}~staff"


def _state_key(announcement_id: str, channel: str) -> str:
    return f"bc:dl:{announcement_id}:{channel}"


def _info_key(announcement_id: str, channel: str) -> str:
    return f"bc:dli:{announcement_id}:{channel}"


def _counts_key(announcement_id: str) -> str:
    return f"bc:dlc:{announcement_id}"


def _index_key(announcement_id: str) -> str:
    return f"bc:dlx:{announcement_id}"


def _lease_key(announcement_id: str, channel: str) -> str:
    return f"bc:dll:{announcement_id}:{channel}"


class Ledger:
    """Delivery records of one announcement, kept in Redis."""

    def __init__(self, r: redis.Redis, announcement_id: str) -> None:
        self.r = r
        self.announcement_id = announcement_id
        self._script = r.register_script(TRANSITION)
        self._claim = r.register_script(CLAIM)
        self._renew = r.register_script(RENEW)

    def move(
        self,
        channel: str,
        subscriber_ids: Iterable[str],
        to_state: str,
        from_states: Iterable[str],
        reached: str | None = None,
    ) -> list[str]:
        """Move the subscribers whose state is in ``from_states`` (``new``: no record yet).

        Returns the ids that moved; the others were already elsewhere (e.g. sent).
        ``reached``: a set the moved ids are added to in the same call (the incident's
        reached set, ``all_clear.reached_key``), so it never disagrees with the ledger.
        """
        ids = list(subscriber_ids)
        if not ids:
            return []
        keys = [
            _state_key(self.announcement_id, channel),
            _counts_key(self.announcement_id),
            _index_key(self.announcement_id),
            _lease_key(self.announcement_id, channel),
            *([reached] if reached else []),
        ]
        args = [channel, to_state, ",".join(from_states), *ids]
        return [m.decode() if isinstance(m, bytes) else m for m in self._script(keys, args)]

    def enqueue(self, channel: str, subscriber_ids: Iterable[str]) -> list[str]:
        """Record new ``queued`` deliveries; existing ones are left as they are."""
        return self.move(channel, subscriber_ids, "queued", ["new"])

    def claim(
        self, channel: str, subscriber_ids: Iterable[str], lease: float = DEFAULT_LEASE
    ) -> list[str]:
        """Claim recipients for ``lease`` seconds; returns only those this caller may send to.

        Queued recipients are claimed, and so are claims whose holder let the lease run out.
        """
        ids = list(subscriber_ids)
        if not ids:
            return []
        keys = [
            _state_key(self.announcement_id, channel),
            _counts_key(self.announcement_id),
            _index_key(self.announcement_id),
            _lease_key(self.announcement_id, channel),
        ]
        claimed = self._claim(keys, [channel, int(lease * 1000), *ids])
        return [m.decode() if isinstance(m, bytes) else m for m in claimed]

    def renew(self, channel: str, subscriber_ids: Iterable[str], lease: float) -> int:
        """Extend the leases of claims still held; returns how many were renewed."""
        ids = list(subscriber_ids)
        if not ids:
            return 0
        keys = [
            _state_key(self.announcement_id, channel),
            _lease_key(self.announcement_id, channel),
        ]
        return int(self._renew(keys, [int(lease * 1000), *ids]))

    def lease_left(self, channel: str, subscriber_ids: list[str]) -> float:
        """Seconds until the last of these claims' leases runs out (0: all expired or none)."""
        if not subscriber_ids:
            return 0.0
        leases = self.r.hmget(_lease_key(self.announcement_id, channel), subscriber_ids)
        seconds, micros = self.r.time()
        now_ms = seconds * 1000 + micros // 1000
        ends = [int(v) for v in leases if v is not None]
        return max(0.0, (max(ends) - now_ms) / 1000) if ends else 0.0

    def release(self, channel: str, subscriber_ids: Iterable[str]) -> list[str]:
        """Give claimed recipients back after a transient failure, for a later retry."""
        return self.move(channel, subscriber_ids, "queued", ["sending"])

    def states(self, channel: str, subscriber_ids: list[str]) -> dict[str, str | None]:
        """Current state per subscriber id (None: no record)."""
        if not subscriber_ids:
            return {}
        values = self.r.hmget(_state_key(self.announcement_id, channel), subscriber_ids)
        return {
            sid: (v.decode() if isinstance(v, bytes) else v)
            for sid, v in zip(subscriber_ids, values, strict=True)
        }

    def ids_in_states(
        self, channel: str, states: Iterable[str], chunk: int = 5000
    ) -> Iterator[list[str]]:
        """Subscriber ids whose delivery is in ``states``, streamed (HSCAN) in chunks."""
        wanted = {s.encode() for s in states}
        cursor = 0
        while True:
            cursor, page = self.r.hscan(
                _state_key(self.announcement_id, channel), cursor, count=chunk
            )
            ids = [sid.decode() for sid, state in page.items() if state in wanted]
            if ids:
                yield ids
            if cursor == 0:
                return

    def note(self, channel: str, details: dict[str, dict[str, Any]]) -> None:
        """Merge details (attempts, provider id, error, message…) into the records."""
        if not details:
            return
        key = _info_key(self.announcement_id, channel)
        ids = list(details)
        current = self.r.hmget(key, ids)
        now = time.time()
        merged = {}
        for sid, raw in zip(ids, current, strict=True):
            record = json.loads(raw) if raw else {}
            record.update(details[sid])
            record["updated_at"] = now
            merged[sid] = json.dumps(record)
        self.r.hset(key, mapping=merged)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per-channel counts of every state."""
        raw = self.r.hgetall(_counts_key(self.announcement_id))
        result: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            channel, state = field.decode().rsplit(":", 1)
            result.setdefault(channel, dict.fromkeys(STATES, 0))[state] = int(value)
        return result

    def total(self) -> int:
        """Number of delivery records."""
        return int(self.r.zcard(_index_key(self.announcement_id)))

    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Delivery records in a stable order (channel, subscriber id)."""
        members = self.r.zrange(_index_key(self.announcement_id), offset, offset + limit - 1)
        return self._records([m.decode().split(":", 1) for m in members])

    def scan(
        self,
        after: str | None,
        limit: int,
        channel: str | None = None,
        state: str | None = None,
        budget: int = 20,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` records after the member ``after`` ("sms:sub_1"), in the same
        order as ``page``, optionally only one channel's or one state's.

        Returns the records and where the next page starts (None: no more). A state
        filter reads ``budget`` batches at most, so one request stays short however rare
        the state; the page may then be short, with a next cursor all the same.
        """
        index = _index_key(self.announcement_id)
        low = f"({after}" if after else "-"
        if channel and (not after or after < f"{channel}:"):
            low = f"[{channel}:"  # members are "channel:id", sorted: one channel is one range
        high = f"({channel};" if channel else "+"  # ";" sorts right after ":"
        found: list[dict[str, Any]] = []
        for _ in range(budget if state else 1):
            members = self.r.zrangebylex(index, low, high, start=0, num=limit)
            if not members:
                return found, None
            records = self._records([m.decode().split(":", 1) for m in members])
            for member, record in zip(members, records, strict=True):
                if state is None or record["state"] == state:
                    found.append(record)
                if len(found) == limit:
                    return found, member.decode()
            low = f"({members[-1].decode()}"
            if len(members) < limit:
                return found, None
        return found, low[1:]

    def _records(self, pairs: list[list[str]]) -> list[dict[str, Any]]:
        """The records of (channel, subscriber id) pairs, in their order; one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for channel, sid in pairs:
            pipe.hget(_state_key(self.announcement_id, channel), sid)
            pipe.hget(_info_key(self.announcement_id, channel), sid)
        values = pipe.execute()
        records = []
        for i, (channel, sid) in enumerate(pairs):
            state, info = values[2 * i], values[2 * i + 1]
            record = json.loads(info) if info else {}
            records.append(
                {
                    "channel": channel,
                    "subscriber_id": sid,
                    "state": state.decode() if state else None,
                    "attempts": record.get("attempts", 0),
                    "to": record.get("to"),
                    "provider_id": record.get("provider_id"),
                    "error": record.get("error"),
                    "message": record.get("message"),
                    "updated_at": record.get("updated_at"),
                    # Plan fallback: the channel this went on to / came from.
                    "fallback": record.get("fallback"),
                    "fallback_from": record.get("fallback_from"),
                    # Escalation step that sent it (delivery/escalation.py), if one did.
                    "escalation": record.get("escalation"),
                    # A voice call's course, where it has one (web/hooks/voice.py).
                    **{key: record[key] for key in CALL_DETAILS if key in record},
                }
            )
        return records

    @staticmethod
    def latest_reached(
        r: redis.Redis,
        announcement_ids: list[str],
        channel: str,
        subscriber_id: str,
        states: Iterable[str],
    ) -> str | None:
        """The first of ``announcement_ids`` whose delivery to this person is in ``states``.

        One round trip: used to find which announcement an inbound reply answers.
        """
        if not announcement_ids:
            return None
        pipe = r.pipeline(transaction=False)
        for announcement_id in announcement_ids:
            pipe.hget(_state_key(announcement_id, channel), subscriber_id)
        wanted = {s.encode() for s in states}
        for announcement_id, state in zip(announcement_ids, pipe.execute(), strict=True):
            if state in wanted:
                return announcement_id
        return None


def summed_counts(r: redis.Redis, announcement_ids: list[str]) -> dict[str, int]:
    """``channel:state`` delivery counts summed over many announcements (for metrics).

    One pipeline per 500 announcements instead of a round trip each.
    """
    totals: dict[str, int] = {}
    for start in range(0, len(announcement_ids), 500):
        pipe = r.pipeline(transaction=False)
        for announcement_id in announcement_ids[start : start + 500]:
            pipe.hgetall(_counts_key(announcement_id))
        for counts in pipe.execute():
            for field, value in counts.items():
                totals[field.decode()] = totals.get(field.decode(), 0) + int(value)
    return totals
