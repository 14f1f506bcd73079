"""Subscribers in Redis (rows are validated by ``domain/subscriber_rows.py``).

A subscriber is found again by ``external_id``, else by email, else by phone, so importing
the same list twice updates people instead of duplicating them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from broadcaster.domain import opt_outs
from broadcaster.domain.channel_order import channels_for as channels_for  # lives there now

ALL_KEY = "bc:subs"
INDEX_KEY = "bc:subx"
SEQ_KEY = "bc:subs:seq"
_CLAIM = """
local won = {}
for i = 1, #ARGV, 2 do won[#won + 1] = redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return won
"""
# Many people's hashes in one script call (flat field/value lists).
# KEYS: subscriber hashes. ARGV per key, in KEYS' order: 2n, then n field/value pairs.
_WRITE = """
local at = 1
for _, key in ipairs(KEYS) do
  local width = tonumber(ARGV[at])
  redis.call('HSET', key, unpack(ARGV, at + 1, at + width))
  at = at + width + 1
end
return #KEYS
"""
_READ = """
local rows = {}
for i, key in ipairs(KEYS) do rows[i] = redis.call('HGETALL', key) end
return rows
"""
_READ_CHUNK = 1000  # people per script call: Redis serves others between calls
# How a person is found again, in order of preference: (index prefix, field).
_LOOKUPS = (("ext", "external_id"), ("email", "email"), ("phone", "phone"))


def _sub_key(subscriber_id: str) -> str:
    return f"bc:sub:{subscriber_id}"


def audience_key(audience: str) -> str:
    return f"bc:aud:{audience}"


class SubscriberStore:
    """Subscribers in Redis, indexed by contact and by audience."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self._claim_script = r.register_script(_CLAIM)
        self._read = r.register_script(_READ)
        self._write = r.register_script(_WRITE)

    def upsert(self, row: dict[str, Any]) -> tuple[str, bool]:
        """Create or update one validated subscriber; returns (id, created)."""
        return self.upsert_many([row])[0]

    def upsert_many(self, rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
        """Create or update validated subscribers in a few round trips; (id, created) per row.

        A person is matched by external_id, else email, else phone; a later row for the
        same person in the same call updates the earlier one.
        """
        lookups = [
            [f"{kind}:{row[field]}" for kind, field in _LOOKUPS if row.get(field)] for row in rows
        ]
        flat = sorted({key for keys in lookups for key in keys})
        known = dict(zip(flat, self.r.hmget(INDEX_KEY, flat), strict=True)) if flat else {}
        known = {k: v.decode() for k, v in known.items() if v}
        ids: list[str] = []
        created: list[bool] = []
        fresh: dict[str, str] = {}  # primary lookup → new id, claimed below
        for keys in lookups:
            found = next((known[k] for k in keys if k in known), None)
            if found is None:
                found = uuid.uuid4().hex[:16]
                fresh[keys[0]] = found
                created.append(True)
            else:
                created.append(False)
            for key in keys:  # later rows in this call find this person too
                known.setdefault(key, found)
            ids.append(found)
        if fresh:
            won = self._claim(list(fresh.items()))
            lost = [key for key, ok in zip(fresh, won, strict=True) if not ok]
            # Someone created the same person a moment ago: update theirs instead.
            for key in lost:
                theirs = self.r.hget(INDEX_KEY, key).decode()
                ids = [theirs if sid == fresh[key] else sid for sid in ids]
                created = [c and sid != theirs for c, sid in zip(created, ids, strict=True)]
        new_ids = set(fresh.values())
        olds = self.get_many(sorted({sid for sid in ids if sid not in new_ids}))
        now = time.time()
        # Listing order is creation order: a counter, since many rows share one timestamp.
        newcomers = [sid for sid in dict.fromkeys(ids) if sid not in olds]
        last = self.r.incrby(SEQ_KEY, len(newcomers)) if newcomers else 0
        seqs = {sid: last - len(newcomers) + n + 1 for n, sid in enumerate(newcomers)}
        original = dict(olds)
        records: dict[str, dict[str, Any]] = {}
        for row, sid in zip(rows, ids, strict=True):
            old = olds.get(sid) or {}
            channels = row["channels"] if row.get("channels") is not None else old.get("channels")
            records[sid] = {
                "id": sid,
                "external_id": row.get("external_id") or old.get("external_id") or "",
                "email": row.get("email") or old.get("email") or "",
                "phone": row.get("phone") or old.get("phone") or "",
                "locale": row["locale"],
                "audiences": ",".join(row["audiences"]),
                "channels": ",".join(channels or []),
                "opt_outs": ",".join(old.get("opt_outs") or []),  # opt-outs survive re-imports
                # Components chosen on /subscribe ([]: all); an import without them keeps them.
                "components": ",".join(
                    row["components"]
                    if row.get("components") is not None
                    else old.get("components") or []
                ),
                # Recorded once given; a later import without it keeps it.
                **_opt_in_fields(row.get("whatsapp_opt_in") or _stored_opt_in(old)),
                "created_at": old.get("created_at", now),
                "updated_at": now,
                "seq": old.get("seq") or seqs[sid],
            }
            # A later row for the same person builds on this one.
            olds[sid] = {
                **old,
                **row,
                "channels": channels,
                "seq": records[sid]["seq"],
                "created_at": records[sid]["created_at"],
            }
        # Few large commands rather than several per row: imports are bulk by nature.
        index_set: dict[str, str] = {}
        index_del: set[str] = set()
        joins: dict[str, dict[str, int]] = {}
        leaves: dict[str, list[str]] = {}
        for sid, record in records.items():
            old = original.get(sid) or {}
            for kind, field in _LOOKUPS:
                if old.get(field) and old[field] != record[field]:
                    index_del.add(f"{kind}:{old[field]}")
                if record[field]:
                    index_set[f"{kind}:{record[field]}"] = sid
            audiences = record["audiences"].split(",")
            for audience in set(old.get("audiences", [])) - set(audiences):
                leaves.setdefault(audience, []).append(sid)
            for audience in audiences:
                joins.setdefault(audience, {})[sid] = record["seq"]
        pipe = self.r.pipeline()
        stale = sorted(index_del - set(index_set))
        if stale:
            pipe.hdel(INDEX_KEY, *stale)
        if index_set:
            pipe.hset(INDEX_KEY, mapping=index_set)
        for audience, members in leaves.items():
            pipe.zrem(audience_key(audience), *members)
        for audience, members in joins.items():
            pipe.zadd(audience_key(audience), members, nx=True)
        pipe.zadd(ALL_KEY, {sid: r["seq"] for sid, r in records.items()}, nx=True)
        # The people's hashes in one script call: a queued HSET each would cost a reply
        # apiece to parse, more than the rest of the chunk's writes together.
        args: list[Any] = []
        for record in records.values():  # fields vary: an opt-in adds two
            args.append(2 * len(record))
            args.extend(part for item in record.items() for part in item)
        keys = [_sub_key(sid) for sid in records]
        if keys:
            self._write(keys=keys, args=args, client=pipe)
        pipe.execute()
        return list(zip(ids, created, strict=True))

    def _claim(self, pairs: list[tuple[str, str]]) -> list[int]:
        """HSETNX index entries for new people in one round trip; 1 where we won."""
        flat = [part for pair in pairs for part in pair]
        return [int(x) for x in self._claim_script(keys=[INDEX_KEY], args=flat)]

    def set_opt_outs(
        self, subscriber_id: str, channels: list[str], opted_out: bool, at: float | None = None
    ) -> dict[str, Any]:
        """Opt a subscriber out of (or back into) channels as of ``at``; returns the subscriber.

        A change older than the channel's last one is ignored (see ``opt_outs``);
        ``changed_opt_outs`` also says which channels that was.
        """
        return self.changed_opt_outs(subscriber_id, channels, opted_out, at)[0]

    def changed_opt_outs(
        self, subscriber_id: str, channels: list[str], opted_out: bool, at: float | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """Like ``set_opt_outs``; returns (subscriber, channels whose change was stale)."""
        changed = opt_outs.apply(self.r, _sub_key(subscriber_id), channels, opted_out, at)
        person = self.get(subscriber_id) if changed else None
        if changed is None or person is None:
            raise KeyError(subscriber_id)
        return person, changed[1]

    def record_whatsapp_opt_in(self, subscriber_id: str, at: float, source: str) -> bool:
        """Record that the person agreed to WhatsApp messages (False: no such person)."""
        if not self.r.exists(_sub_key(subscriber_id)):
            return False
        self.r.hset(_sub_key(subscriber_id), mapping=_opt_in_fields((at, source)))
        return True

    def find_by_contact(self, kind: str, value: str) -> str | None:
        """The id of the subscriber with this ``email``/``phone``/``ext`` (as stored), or None."""
        found = self.r.hget(INDEX_KEY, f"{kind}:{value}")
        return found.decode() if found else None

    def erase(self, subscriber_id: str) -> bool:
        """Erase a person's contact data everywhere; deliveries keep only the bare id."""
        person = self.get(subscriber_id)
        if person is None:
            return False
        pipe = self.r.pipeline()
        for kind, field in _LOOKUPS:
            if person.get(field):
                pipe.hdel(INDEX_KEY, f"{kind}:{person[field]}")
        for audience in person["audiences"]:
            pipe.zrem(audience_key(audience), subscriber_id)
        pipe.zrem(ALL_KEY, subscriber_id)
        pipe.delete(_sub_key(subscriber_id))
        pipe.execute()
        return True

    def get(self, subscriber_id: str) -> dict[str, Any] | None:
        """One subscriber as a plain dict, or None."""
        return self.get_many([subscriber_id]).get(subscriber_id)

    def get_many(self, subscriber_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Subscribers by id (missing ones, e.g. erased, are left out).

        One script call per chunk instead of an HGETALL each: a fan-out reads every person
        twice (planning, then sending), and building, sending and parsing a thousand
        commands cost more than the rest of the batch (docs/performance.md).
        """
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(subscriber_ids), _READ_CHUNK):
            chunk = subscriber_ids[start : start + _READ_CHUNK]
            rows = self._read([_sub_key(sid) for sid in chunk])
            for sid, flat in zip(chunk, rows, strict=True):
                if flat:  # empty: no such subscriber (erased, or never was)
                    found[sid] = _decode(dict(zip(flat[::2], flat[1::2], strict=True)))
        return found

    def count(self, audience: str | None = None) -> int:
        return int(self.r.zcard(audience_key(audience) if audience else ALL_KEY))

    def page(self, offset: int, limit: int, audience: str | None = None) -> list[dict[str, Any]]:
        """Subscribers in order of creation."""
        key = audience_key(audience) if audience else ALL_KEY
        ids = [m.decode() for m in self.r.zrange(key, offset, offset + limit - 1)]
        found = self.get_many(ids)
        return [found[i] for i in ids if i in found]

    def ids_in(self, audiences: Iterable[str], chunk: int = 5000) -> Iterator[list[str]]:
        """Stream the audiences' subscriber ids in chunks (a person may repeat across audiences)."""
        for audience in audiences:
            start = 0
            while True:
                ids = self.r.zrange(audience_key(audience), start, start + chunk - 1)
                if not ids:
                    break
                yield [i.decode() for i in ids]
                start += chunk


def _stored_opt_in(old: dict[str, Any]) -> tuple[float, str] | None:
    if old.get("whatsapp_opt_in"):  # an earlier row of the same call
        return old["whatsapp_opt_in"]
    at = old.get("whatsapp_opt_in_at")
    return (at, old.get("whatsapp_opt_in_source") or "") if at else None


def _opt_in_fields(opt_in: tuple[float, str] | None) -> dict[str, Any]:
    """The stored fields of an opt-in (none without one: most people cost nothing more)."""
    if not opt_in:
        return {}
    return {"whatsapp_opt_in_at": opt_in[0], "whatsapp_opt_in_source": opt_in[1]}


def _split(raw: bytes | None) -> list[str]:
    # Stored joined from validated, non-empty names: no empty items to filter out.
    return raw.decode().split(",") if raw else []


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """A subscriber from its stored hash."""
    get = raw.get
    external_id, email, phone, locale = (get(b"external_id"), get(b"email"), get(b"phone"),
                                         get(b"locale"))  # fmt: skip
    return {
        "id": raw[b"id"].decode(),
        "external_id": external_id.decode() if external_id else None,
        "email": email.decode() if email else None,
        "phone": phone.decode() if phone else None,
        "locale": locale.decode() if locale is not None else None,
        "audiences": _split(get(b"audiences")),
        "channels": _split(get(b"channels")) or None,
        "opt_outs": _split(get(b"opt_outs")),
        "components": _split(get(b"components")) or None,
        "created_at": float(get(b"created_at") or 0),
        "updated_at": float(get(b"updated_at") or 0),
        "seq": int(get(b"seq") or 0),
        # When and how they agreed to WhatsApp (domain/whatsapp_consent.py); None: never.
        "whatsapp_opt_in_at": float(get(b"whatsapp_opt_in_at") or 0) or None,
        "whatsapp_opt_in_source": (get(b"whatsapp_opt_in_source") or b"").decode() or None,
    }
