"""Subscribers in Redis (rows are validated by ``domain/subscriber_rows.py``).

A subscriber is found again by ``external_id``, else by email, else by phone, so importing
the same list twice updates people instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import redis

from broadcaster.domain import opt_outs, subscriber_upsert
from broadcaster.domain.channel_order import channels_for as channels_for  # lives there now

# The keys live in subscriber_keys.py; imported from here by many.
from broadcaster.domain.subscriber_keys import ALL_KEY as ALL_KEY
from broadcaster.domain.subscriber_keys import INDEX_KEY as INDEX_KEY
from broadcaster.domain.subscriber_keys import LOOKUPS, sub_key
from broadcaster.domain.subscriber_keys import SEQ_KEY as SEQ_KEY
from broadcaster.domain.subscriber_keys import audience_key as audience_key
from broadcaster.domain.subscriber_scripts import MATCH
from broadcaster.domain.subscriber_upsert import Earlier, Upsert
from broadcaster.infra import redis_bulk

_READ_CHUNK = 1000  # people per round trip: Redis serves others between them


class SubscriberStore:
    """Subscribers in Redis, indexed by contact and by audience."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.match = r.register_script(MATCH)  # subscriber_upsert.prepare's

    def upsert(self, row: dict[str, Any]) -> tuple[str, bool]:
        """Create or update one validated subscriber; returns (id, created)."""
        return self.upsert_many([row])[0]

    def upsert_many(self, rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
        """Create or update validated subscribers in a few round trips; (id, created) per row.

        A person is matched by external_id, else email, else phone; a later row for the
        same person in the same call updates the earlier one.
        """
        upsert = self.prepare(rows)
        self.write(upsert)
        return upsert.outcome

    def write(self, upsert: Upsert) -> None:
        """Make a prepared chunk's writes: all of them or none."""
        redis_bulk.transaction(self.r, upsert.commands)

    def prepare(
        self,
        rows: list[dict[str, Any]],
        earlier: Earlier | None = None,
        lookups: list[list[str]] | None = None,
    ) -> Upsert:
        """``upsert_many`` up to its writes (``domain/subscriber_upsert.py``)."""
        return subscriber_upsert.prepare(self, rows, earlier, lookups)

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
        changed = opt_outs.apply(self.r, sub_key(subscriber_id), channels, opted_out, at)
        person = self.get(subscriber_id) if changed else None
        if changed is None or person is None:
            raise KeyError(subscriber_id)
        return person, changed[1]

    def record_whatsapp_opt_in(self, subscriber_id: str, at: float, source: str) -> bool:
        """Record that the person agreed to WhatsApp messages (False: no such person)."""
        if not self.r.exists(sub_key(subscriber_id)):
            return False
        self.r.hset(
            sub_key(subscriber_id),
            mapping={"whatsapp_opt_in_at": at, "whatsapp_opt_in_source": source},
        )
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
        for kind, field in LOOKUPS:
            if person.get(field):
                pipe.hdel(INDEX_KEY, f"{kind}:{person[field]}")
        for audience in person["audiences"]:
            pipe.zrem(audience_key(audience), subscriber_id)
        pipe.zrem(ALL_KEY, subscriber_id)
        pipe.delete(sub_key(subscriber_id))
        pipe.execute()
        return True

    def get(self, subscriber_id: str) -> dict[str, Any] | None:
        """One subscriber as a plain dict, or None."""
        return self.get_many([subscriber_id]).get(subscriber_id)

    def get_many(self, subscriber_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Subscribers by id (missing ones, e.g. erased, are left out).

        A thousand plain HGETALLs per round trip, packed by hiredis: a fan-out reads every
        person twice (planning, then sending). Through redis-py's pipeline each command cost
        more than Redis' work on it, and inside a Lua script Redis spent five times as long
        turning the replies into Lua tables and back (docs/performance.md).
        """
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(subscriber_ids), _READ_CHUNK):
            chunk = subscriber_ids[start : start + _READ_CHUNK]
            rows = redis_bulk.pipeline(self.r, [("HGETALL", sub_key(sid)) for sid in chunk])
            for sid, raw in zip(chunk, rows, strict=True):
                if raw:  # empty: no such subscriber (erased, or never was)
                    found[sid] = _decode(raw if isinstance(raw, dict) else _pairs(raw))
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


def _split(raw: bytes | None) -> list[str]:
    # Stored joined from validated, non-empty names: no empty items to filter out.
    return raw.decode().split(",") if raw else []


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    # A hash as RESP2 gives it (field, value, …); hiredis may give a dict already.
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """A subscriber from its stored hash (a field not stored is empty)."""
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
