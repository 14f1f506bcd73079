"""Preparing a chunk of subscribers for storing (``SubscriberStore.prepare``): who each row
is, found or created in one atomic script, and every write that stores them, for
``SubscriberStore.write`` to make in one transaction.

Most rows of an import are people seen for the first time, once: their writes are built
straight from the row. Anyone else (known already, or in several rows of the chunk)
takes the general path, which keeps what the row does not say (opt-outs, components, the
WhatsApp opt-in) and moves index entries and audiences that changed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broadcaster.domain.subscriber_keys import (
    ALL_KEY,
    INDEX_KEY,
    LOOKUPS,
    SEQ_KEY,
    audience_key,
    sub_key,
)

if TYPE_CHECKING:
    from broadcaster.domain.subscribers import SubscriberStore

# Told the chunk's lookups (before they are matched), then its people (before their
# stored selves are read): an import waits there for an earlier chunk's writes they need.
Earlier = Callable[[set[str], set[str]], None]
_NOBODY: dict[str, Any] = {}  # the earlier self of someone new (never written to)


@dataclass(frozen=True)
class Upsert:
    """A chunk of people, found or created, and the writes that store them."""

    outcome: list[tuple[str, bool]]  # (id, created) per row
    commands: list[list[Any]]
    people: set[str]  # whose stored selves the writes change
    lookups: set[str]  # index entries the writes set to someone else or remove


def prepare(
    store: SubscriberStore,
    rows: list[dict[str, Any]],
    earlier: Earlier | None = None,
    lookups: list[list[str]] | None = None,
) -> Upsert:
    """The chunk's people and writes (see the module doc); index entries nobody had are
    claimed for the rows' people at once, so the next chunk finds them. ``lookups``: the
    rows' ``lookups_of_row``, if known already."""
    if not rows:
        return Upsert([], [], set(), set())
    if lookups is None:
        lookups = [lookups_of_row(row) for row in rows]
    if earlier is not None:
        earlier({key for keys in lookups for key in keys}, set())
    random = os.urandom(8 * len(rows)).hex()  # 16 hex digits each, as uuid4().hex[:16]
    proposed = [random[i : i + 16] for i in range(0, len(random), 16)]
    found, won, last, claims = store.match(
        keys=[INDEX_KEY, SEQ_KEY], args=[_json(lookups), _json(proposed)]
    )
    ids = [sid.decode() for sid in found]
    created = [bool(c) for c in won]
    newcomers = [sid for sid, new in zip(ids, created, strict=True) if new]
    first = int(last) - len(newcomers) + 1
    seqs = {sid: first + n for n, sid in enumerate(newcomers)}
    everybody = set(ids)
    if earlier is not None:
        earlier(set(), everybody)
    olds = store.get_many(sorted({sid for sid, new in zip(ids, created, strict=True) if not new}))
    # Known to the index but without a hash (half-written before a crash): as new.
    strays = [sid for sid in dict.fromkeys(ids) if sid not in seqs and sid not in olds]
    if strays:
        top = store.r.incrby(SEQ_KEY, len(strays))
        seqs.update({sid: top - len(strays) + n + 1 for n, sid in enumerate(strays)})
    again = {sid for sid, n in Counter(ids).items() if n > 1} if len(everybody) < len(ids) else ()
    now = time.time()
    people: list[list[Any]] = []
    joins: dict[str, list[Any]] = {}
    everyone: list[Any] = []
    general: list[tuple[dict[str, Any], str]] = []
    for row, sid, new in zip(rows, ids, created, strict=True):
        if not new or sid in again:
            general.append((row, sid))
            continue
        # Someone new, once in the chunk: every lookup of theirs was claimed by the match.
        seq = seqs[sid]
        person = ["HSET", sub_key(sid), "id", sid]
        for field in ("external_id", "email", "phone"):
            if row.get(field):
                person += (field, row[field])
        audiences = row["audiences"]
        person += ("locale", row["locale"], "audiences", ",".join(audiences))
        for field in ("channels", "components"):
            if row.get(field):
                person += (field, ",".join(row[field]))
        for item in _opt_in_fields(row.get("whatsapp_opt_in")).items():
            person += item
        person += ("created_at", now, "updated_at", now, "seq", seq)
        people.append(person)
        for audience in audiences:
            joins.setdefault(audience_key(audience), []).extend((seq, sid))
        everyone += (seq, sid)
    commands, moved = _general(general, olds, seqs, now, claims, joins, everyone)
    for key, scored in joins.items():
        commands.append(["ZADD", key, "NX", *scored])
    commands.append(["ZADD", ALL_KEY, "NX", *everyone])
    return Upsert(list(zip(ids, created, strict=True)), commands + people, everybody, moved)


def _general(
    rows: list[tuple[dict[str, Any], str]],
    olds: dict[str, dict[str, Any]],
    seqs: dict[str, int],
    now: float,
    claims: list[bytes],
    joins: dict[str, list[Any]],
    everyone: list[Any],
) -> tuple[list[list[Any]], set[str]]:
    """Writes for people known already or in several rows: (commands, index entries they
    set to someone else or remove). Audience joins are added to ``joins``/``everyone``."""
    if not rows:
        return [], set()
    original = dict(olds)
    later = Counter(sid for _, sid in rows)
    records: dict[str, dict[str, Any]] = {}
    for row, sid in rows:
        old = olds.get(sid) or _NOBODY
        channels = row["channels"] if row.get("channels") is not None else old.get("channels")
        records[sid] = {
            "id": sid,
            "external_id": row.get("external_id") or old.get("external_id") or "",
            "email": row.get("email") or old.get("email") or "",
            "phone": row.get("phone") or old.get("phone") or "",
            "locale": row["locale"],
            "audiences": ",".join(row["audiences"]),
            "channels": ",".join(channels or ()),
            "opt_outs": ",".join(old.get("opt_outs") or ()),  # opt-outs survive re-imports
            # Components chosen on /subscribe ([]: all); an import without them keeps them.
            "components": ",".join(
                row["components"]
                if row.get("components") is not None
                else old.get("components") or ()
            ),
            # Recorded once given; a later import without it keeps it.
            **_opt_in_fields(row.get("whatsapp_opt_in") or _stored_opt_in(old)),
            "created_at": old.get("created_at", now),
            "updated_at": now,
            "seq": old.get("seq") or seqs[sid],
        }
        later[sid] -= 1
        if later[sid]:  # their later row builds on this one
            olds[sid] = {
                **old,
                **row,
                "channels": channels,
                "seq": records[sid]["seq"],
                "created_at": records[sid]["created_at"],
            }
    index_set: dict[str, str] = {}
    index_del: set[str] = set()
    leaves: dict[str, list[str]] = {}
    # What the match claimed for someone whose contact then changed in a later row of
    # the chunk is no longer theirs.
    claimed_by: dict[str, list[str]] = {}
    for key, sid in zip(claims[::2], claims[1::2], strict=True):
        claimed_by.setdefault(sid.decode(), []).append(key.decode())
    for sid, record in records.items():
        old = original.get(sid) or _NOBODY
        for kind, field in LOOKUPS:
            if old.get(field) and old[field] != record[field]:
                index_del.add(f"{kind}:{old[field]}")
            if record[field]:
                index_set[f"{kind}:{record[field]}"] = sid
        index_del.update(k for k in claimed_by.get(sid, ()) if index_set.get(k) != sid)
        audiences = record["audiences"].split(",")
        for audience in set(old.get("audiences", ())) - set(audiences):
            leaves.setdefault(audience, []).append(sid)
        for audience in audiences:
            joins.setdefault(audience_key(audience), []).extend((record["seq"], sid))
        everyone += (record["seq"], sid)
    # Lookups nobody had were claimed by the match already.
    claimed = {key.decode() for key in claims[::2]}
    moved = {key: sid for key, sid in index_set.items() if key not in claimed}
    commands: list[list[Any]] = []
    stale = sorted(index_del - set(index_set))
    if stale:
        commands.append(["HDEL", INDEX_KEY, *stale])
    if moved:
        commands.append(["HSET", INDEX_KEY, *(part for pair in moved.items() for part in pair)])
    for audience, members in leaves.items():
        commands.append(["ZREM", audience_key(audience), *members])
    for sid, record in records.items():
        # A new person's empty fields are left out (read back as empty); an update
        # writes them all, so a value removed is removed.
        fields = [i for i in record.items() if i[1] != "" or sid in original]
        commands.append(["HSET", sub_key(sid), *(part for item in fields for part in item)])
    return commands, set(moved) | set(stale)


def lookups_of_row(row: dict[str, Any]) -> list[str]:
    """The index entries a row is looked up by, in order of preference."""
    return [f"{kind}:{row[field]}" for kind, field in LOOKUPS if row.get(field)]


def _json(value: Any) -> str:
    """A script's argument: compact JSON, UTF-8 as is (redis-py refuses what it cannot encode,
    as it did for each value on its own)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
