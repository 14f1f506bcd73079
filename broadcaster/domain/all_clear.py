"""Who gets an announcement by email/SMS, and why a resolution goes to everyone alerted.

An ordinary announcement goes to its audiences' subscribers (``channels_for``). A
*resolution* (status ``resolved``) goes by email/SMS exactly to the people the incident
already reached by that channel — whatever the pacing says, and nobody else by those
channels: someone who joined an audience after the alert, or was never texted, learns of
the all-clear from the banner, the status page and social posts.

"Reached" means the provider accepted the message (the ledger moved it to ``sent``). The
ledger adds the person to the incident's *reached set* for that channel in the same Lua call
that records ``sent`` (``Ledger.move(..., reached=...)``), so the set is exact and costs no
scan of the ledgers: one Redis set per incident and channel, streamed with SSCAN in chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import redis

from broadcaster.domain import visibility
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcements import AnnouncementStore
from broadcaster.domain.channel_order import asking_audiences
from broadcaster.domain.incidents import closes
from broadcaster.domain.ledger import Ledger
from broadcaster.domain.plan import Plan
from broadcaster.domain.subscribers import SubscriberStore, channels_for
from channels import CONTACT_FIELD, PERSONAL

CHUNK = 5000  # ids per round trip, as the plan job reads audiences

# Per channel: (ids to send to, ids opted out) for one chunk of people.
Choices = tuple[dict[str, list[str]], dict[str, list[str]]]


def reached_key(incident_id: str, channel: str) -> str:
    """The set of subscriber ids the incident reached by ``channel``."""
    return f"bc:inc:{incident_id}:reached:{channel}"


def resolution_key(incident_id: str) -> str:
    """The incident's latest planned resolution: late deliveries of earlier ones catch up."""
    return f"bc:inc:{incident_id}:resolution"


def adopted_key(incident_id: str) -> str:
    """Set once the incident's reached sets are kept (see ``adopt``)."""
    return f"bc:inc:{incident_id}:reached-kept"


# Ledger states a delivery is in once the provider accepted it (receipts move it on).
ACCEPTED = ("sent", "delivered", "undelivered", "bounced", "dropped")


def adopt(r: redis.Redis, store: AnnouncementStore, announcement: Announcement) -> None:
    """Start keeping the incident's reached sets, with the first announcement planned.

    An incident open since before this version kept them has earlier announcements already
    sent: their ledgers are read once (HSCAN, in chunks) into the sets. A new incident has
    none, so this costs one SET NX per plan job.
    """
    incident_id = announcement.incident_id
    if not r.set(adopted_key(incident_id), 1, nx=True):
        return
    for earlier in store.timeline(incident_id):
        if earlier.id == announcement.id or not earlier.published:
            continue
        ledger = Ledger(r, earlier.id)
        for channel in PERSONAL:
            for ids in ledger.ids_in_states(channel, ACCEPTED):
                r.sadd(reached_key(incident_id, channel), *ids)


def is_resolution(announcement: Announcement) -> bool:
    return closes(announcement.status)


def reached_channels(r: redis.Redis, incident_id: str) -> list[str]:
    """The personal channels by which the incident reached anyone so far."""
    pipe = r.pipeline(transaction=False)
    for channel in PERSONAL:
        pipe.exists(reached_key(incident_id, channel))
    return [c for c, found in zip(PERSONAL, pipe.execute(), strict=True) if found]


def reached_among(
    r: redis.Redis, incident_id: str, channel: str, subscriber_ids: list[str]
) -> list[str]:
    """Those of ``subscriber_ids`` the incident reached by ``channel``."""
    if not subscriber_ids:
        return []
    found = r.smismember(reached_key(incident_id, channel), subscriber_ids)
    return [sid for sid, hit in zip(subscriber_ids, found, strict=True) if hit]


def stream_reached(
    r: redis.Redis, incident_id: str, channel: str, chunk: int = CHUNK
) -> Iterator[list[str]]:
    """The reached set in chunks (SSCAN: every member present throughout is returned)."""
    cursor = 0
    pending: list[str] = []
    while True:
        cursor, ids = r.sscan(reached_key(incident_id, channel), cursor, count=chunk)
        pending.extend(i.decode() if isinstance(i, bytes) else i for i in ids)
        while len(pending) >= chunk:
            yield pending[:chunk]
            pending = pending[chunk:]
        if cursor == 0:
            break
    if pending:
        yield pending


def resolution_channels(
    store: AnnouncementStore, incident_id: str | None, channels: Iterable[str]
) -> list[str]:
    """A resolution's channels: its public ones as chosen, and email/SMS exactly those by
    which the incident reached people — whatever the sender picked, so the all-clear
    reaches everyone alerted. Personal channels of its published announcements count too,
    so an alert still being sent does."""
    if not incident_id:
        return [c for c in channels if c not in PERSONAL]
    used = {c for a in store.timeline(incident_id) if a.published for c in a.channels}
    used |= set(reached_channels(store.r, incident_id))
    return [c for c in channels if c not in PERSONAL] + [c for c in PERSONAL if c in used]


def choices(
    r: redis.Redis, subscribers: SubscriberStore, plan: Plan, announcement: Announcement
) -> Iterator[Choices]:
    """Per chunk of people: whom to send to by which channel, and who opted out."""
    if not is_resolution(announcement):
        for chunk in subscribers.ids_in(announcement.audiences):
            yield _by_audience(subscribers.get_many(chunk), announcement, plan)
        return
    for channel in reached_channels(r, announcement.incident_id):
        for chunk in stream_reached(r, announcement.incident_id, channel):
            send, skip = late(subscribers, plan, announcement, channel, chunk)
            yield {channel: send}, {channel: skip}


def late(
    subscribers: SubscriberStore,
    plan: Plan,
    resolution: Announcement,
    channel: str,
    subscriber_ids: list[str],
) -> tuple[list[str], list[str]]:
    """(send, opted out): which of these alerted people get ``resolution`` by ``channel``."""
    # An internal resolution must not reach customers alerted in the same incident.
    internal = visibility.internal_only(plan, resolution.audiences)
    send: list[str] = []
    skip: list[str] = []
    for sid, person in subscribers.get_many(subscriber_ids).items():
        verdict = _still_reachable(person, channel, resolution, internal)
        if verdict == "send":
            send.append(sid)
        elif verdict == "opted out":
            skip.append(sid)
    return send, skip


def _by_audience(
    people: dict[str, dict[str, Any]], announcement: Announcement, plan: Plan
) -> Choices:
    send: dict[str, list[str]] = {}
    skip: dict[str, list[str]] = {}
    asking = asking_audiences(plan, announcement, announcement.audiences)
    for sid, person in people.items():
        to, out = channels_for(person, announcement, plan, asking)
        for channel in to:
            send.setdefault(channel, []).append(sid)
        for channel in out:
            skip.setdefault(channel, []).append(sid)
    return send, skip


def _still_reachable(
    person: dict[str, Any], channel: str, announcement: Announcement, internal: bool
) -> str:
    """``send``, ``opted out`` (recorded as skipped) or ``no`` for one alerted person.

    Opt-outs always win; so does a person's own choice of channels made since, and a
    contact removed since. Audiences do not matter: they got the alert, they get the
    all-clear — except that an internal one stays with its own audiences.
    """
    if not person.get(CONTACT_FIELD[channel]):
        return "no"
    if internal and not set(person["audiences"]) & set(announcement.audiences):
        return "no"
    chosen = person.get("channels")
    if chosen and channel not in chosen:
        return "no"
    if channel in (person.get("opt_outs") or []):
        return "opted out"
    return "send"


def audiences_for(person: dict[str, Any], announcement: Announcement) -> list[str]:
    """The audiences whose routes a person's message shows: theirs the announcement names,
    or (an alerted person outside a resolution's audiences) their own."""
    shared = sorted(set(person["audiences"]) & set(announcement.audiences))
    return shared or sorted(person["audiences"])
