"""The public status data: incidents and their timelines, for the page, JSON and the feed.

Precomputed like the banner: one document per locale — open incidents with their
timelines, then the latest of those resolved in the last 14 days — stored in Redis. Every
publish (``after_publish``, from ``public_pages.after_publish``, which the service calls after its
commit) marks its incident; the next page read renders the marked incidents again and puts
them in their place (``_apply``); the whole document is built only on first use. The pages
read that one value; a miss never walks the history,
so a status page costs the same with 10,000 past incidents as with 10, and a publish the
same with 100 open incidents as with one.

Two sorted sets index the incidents by recency, so a rebuild reads only what it shows:
:data:`OPEN_KEY` (open incidents by their latest update) and :data:`RESOLVED_KEY` (resolved
ones by ``resolved_at``, which also pages the history). They are kept here, not in the
publish transaction, and rebuilt once from ``bc:incs`` where they are missing (upgrades).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import redis

from broadcaster.domain import promises
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcements import INCIDENTS_KEY
from broadcaster.domain.incident_facts import closed_at
from broadcaster.domain.visibility import is_internal, is_public, public_audiences, public_incident
from broadcaster.rendering import isolation
from broadcaster.rendering.clock import iso
from broadcaster.rendering.messages import content_for, language_for, routes_for

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

RECENT_DAYS = 14
PAGE_SIZE = 20  # resolved incidents per page, the first page's included
# Open incidents on the page, latest update first: an alert storm must not make every
# publish re-read thousands of timelines (the banner shows five for the same reason).
MAX_OPEN = 100
MAX_PAGE = 100_000
OPEN_KEY = "bc:status:open"  # open incident id → published_at of its latest update
RESOLVED_KEY = "bc:status:resolved"  # resolved incident id → resolved_at
_INDEXED_KEY = "bc:status:indexed"  # the two sets were built from bc:incs (once)
_DIRTY_KEY = "bc:status:dirty"  # rebuild everything (first use, upgrades)
_CHANGED_KEY = "bc:status:changed"  # incidents to render again and put in their place
_PENDING_KEY = "bc:status:pending"  # set with each change: one MGET tells a reader
_CHANGES_PER_ROUND = 500
_REFRESH_LOCK = "bc:status:refreshing"
# Rounds one publishing request does for everybody before it leaves the rest to the next
# publish or reader: a steady stream of publishes must not keep one request busy forever.
_MAX_ROUNDS = 3
_BACKFILL_CHUNK = 500


def document_key(locale: str) -> str:
    return f"bc:status:doc:{locale}"


def page_of(raw: str | None) -> int:
    """``?page=`` as a page number: 1 unless it is a whole number from 1 to MAX_PAGE."""
    if raw and raw.isdigit() and len(raw) <= 6:
        return max(1, min(int(raw), MAX_PAGE))
    return 1


def index(pipe: redis.client.Pipeline | redis.Redis, incident: dict[str, Any]) -> None:
    """Add the commands that file a published incident under open or resolved to ``pipe``.

    An incident whose every announcement was withdrawn is history too, from that time.
    """
    closed = closed_at(incident)
    if closed:
        pipe.zrem(OPEN_KEY, incident["id"])
        pipe.zadd(RESOLVED_KEY, {incident["id"]: closed})
    else:
        pipe.zrem(RESOLVED_KEY, incident["id"])
        pipe.zadd(OPEN_KEY, {incident["id"]: incident["updated_at"]})


def after_publish(svc: Services, announcement: Announcement) -> None:
    """File the announcement's incident by recency and mark it for the documents.

    The next reader of a status page (single-flight, across all processes) renders the
    marked incidents again and puts them in their place, in one batch however many were
    published meanwhile; the publish itself costs a few round trips (reading the incident's
    timeline, filing it). An announcement for internal audiences only changes nothing
    public and costs none. Every page read checks the mark in the same MGET as the
    document, so the change shows at once. (Rebuilding on the publish made 200
    announcements a second queue behind each other: p99 0.9 s.)
    """
    if not is_public(svc.plan, announcement):
        return  # internal (or unpublished): nothing public changes
    # Filed as the public knows it: an internal follow-up may have moved the stored one.
    found = _published(svc, [announcement.incident_id])
    if not found:
        return
    incident = found[0][0]
    pipe = svc.redis.pipeline(transaction=False)
    index(pipe, incident)
    pipe.sadd(_CHANGED_KEY, incident["id"])
    pipe.set(_PENDING_KEY, 1)
    pipe.execute()


def refresh(svc: Services) -> None:
    """Bring every locale's document up to date (single-flight, as the banner's refresh)."""
    svc.redis.set(_DIRTY_KEY, 1)
    _drain(svc)


def invalidate(svc: Services) -> None:
    """Mark every document for a full rebuild by the next page read (a new plan)."""
    svc.redis.set(_DIRTY_KEY, 1)


def _drain(svc: Services) -> None:
    """Recompute while something is marked dirty, unless another process already does.

    The holder of the lock sees every mark set before it lets go; a mark it leaves after
    ``_MAX_ROUNDS`` is picked up by the next publish or by the next page miss (``first_page``).
    """
    r = svc.redis
    rounds = 0
    while rounds < _MAX_ROUNDS and r.exists(_DIRTY_KEY, _PENDING_KEY):
        token = uuid.uuid4().hex
        if not r.set(_REFRESH_LOCK, token, nx=True, ex=30):
            return
        try:
            while rounds < _MAX_ROUNDS:
                rounds += 1
                if r.getdel(_DIRTY_KEY):
                    r.delete(_PENDING_KEY)  # a full rebuild covers every change so far
                    r.delete(_CHANGED_KEY)
                    _recompute(svc)
                elif r.getdel(_PENDING_KEY):
                    changed = [i.decode() for i in r.spop(_CHANGED_KEY, _CHANGES_PER_ROUND)]
                    if r.scard(_CHANGED_KEY):
                        r.set(_PENDING_KEY, 1)  # more than one round's worth: go round again
                    _apply(svc, changed)
                else:
                    break
        finally:
            if r.get(_REFRESH_LOCK) == token.encode():
                r.delete(_REFRESH_LOCK)


def _recompute(svc: Services) -> None:
    docs = build(svc)
    pipe = svc.redis.pipeline(transaction=False)
    for locale, doc in docs.items():
        pipe.set(document_key(locale), json.dumps(doc))
    pipe.execute()
    # No microcache clear here: documents are (re)built by a page read, whose own answer
    # is fresh; the publish that marked the change cleared its process's cache already.


def build(svc: Services) -> dict[str, dict[str, Any]]:
    """The first page's document for every locale, from open and recent incidents only."""
    _backfill(svc)
    cutoff = time.time() - RECENT_DAYS * 86400
    pipe = svc.redis.pipeline(transaction=False)
    pipe.zrevrange(OPEN_KEY, 0, MAX_OPEN - 1)
    pipe.zrevrangebyscore(RESOLVED_KEY, "+inf", cutoff, start=0, num=PAGE_SIZE)
    pipe.zcard(RESOLVED_KEY)
    open_ids, recent_ids, resolved_total = pipe.execute()
    ids = [i.decode() for i in open_ids] + [i.decode() for i in recent_ids]
    incidents = [
        (incident, published)
        for incident, published in _published(svc, ids)
        if (closed_at(incident) or cutoff) >= cutoff
    ]
    rendered: dict[tuple[str, ...], dict[str, Any]] = {}
    return {
        locale: _document(_entries(svc, incidents, locale, rendered), int(resolved_total))
        for locale in svc.plan.locales
    }


def _entries(
    svc: Services,
    incidents: list[tuple[dict[str, Any], list[Announcement]]],
    locale: str,
    rendered: dict[tuple[str, ...], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each incident's entry in one locale, item by item (one that fails is left out,
    logged and counted). ``rendered`` memoises across locales: an incident without
    translations reads the same in every locale and is rendered once."""

    def entry(item: tuple[dict[str, Any], list[Announcement]]) -> dict[str, Any]:
        incident, published = item
        languages = tuple(language_for(a, locale, svc.plan.default_locale) for a in published)
        memo = (incident["id"], *languages)
        if memo not in rendered:
            rendered[memo] = _incident(svc, incident, published, locale)
        return rendered[memo]

    return isolation.each(svc.redis, "status", incidents, entry, lambda i: i[0]["id"])


def _document(entries: list[dict[str, Any]], resolved_total: int) -> dict[str, Any]:
    """The stored first page: open ones by latest update, then the recently resolved (and
    withdrawn)."""
    open_ = sorted(
        (e for e in entries if not _entry_closed(e)),
        key=lambda e: e["updated_at"],
        reverse=True,
    )
    resolved = sorted(
        (e for e in entries if _entry_closed(e)),
        key=_entry_closed,
        reverse=True,
    )
    return {
        "open": open_[:MAX_OPEN],
        "resolved": resolved[:PAGE_SIZE],
        "resolved_total": resolved_total,
        "computed_at": time.time(),
    }


def _apply(svc: Services, changed: list[str]) -> None:
    """Render only the changed incidents again and put them in their place in each document.

    Falls back to a full rebuild where a document is missing, or where a list was full and
    loses an entry (the next one in line is not in the document).
    """
    if not changed:
        return
    r = svc.redis
    locales = list(svc.plan.locales)
    raws = r.mget([document_key(locale) for locale in locales])
    if any(raw is None for raw in raws):
        _recompute(svc)
        return
    cutoff = time.time() - RECENT_DAYS * 86400
    incidents = [
        (incident, published)
        for incident, published in _published(svc, changed)
        if (closed_at(incident) or cutoff) >= cutoff
    ]
    resolved_total = int(r.zcard(RESOLVED_KEY))
    rendered: dict[tuple[str, ...], dict[str, Any]] = {}
    gone = set(changed)  # their old entries, replaced by the fresh ones (if still shown)
    pipe = r.pipeline(transaction=False)
    for locale, raw in zip(locales, raws, strict=True):
        doc = json.loads(raw)
        kept = [e for e in doc["open"] + doc["resolved"] if e["id"] not in gone]
        # The changed ones first: on a tie to the second, the latest publish leads.
        fresh = _document(_entries(svc, incidents, locale, rendered) + kept, resolved_total)
        shrunk = [
            part
            for part, cap in (("open", MAX_OPEN), ("resolved", PAGE_SIZE))
            if len(doc[part]) >= cap and len(fresh[part]) < len(doc[part])
        ]
        if shrunk:  # a full list lost an entry: the next in line is not in the document
            _recompute(svc)
            return
        pipe.set(document_key(locale), json.dumps(fresh))
    pipe.execute()


def _published(svc: Services, ids: list[str]) -> list[tuple[dict[str, Any], list[Announcement]]]:
    """(incident, public timeline) of each incident that has anything public yet.

    Announcements waiting for approval and those for internal audiences only are left out
    (``domain/visibility.py``); an incident with nothing else is not public at all.
    """
    found = []
    for incident, timeline in svc.announcements.with_timelines(ids):
        public = public_incident(svc.plan, incident, timeline)
        if public:
            found.append(public)
    return found


def _backfill(svc: Services) -> None:
    """File every incident by recency, once, where the sets predate this code (or were lost).

    Reads the whole history, in chunks: only ever on the first rebuild after an upgrade.
    """
    r = svc.redis
    if r.exists(_INDEXED_KEY):
        return
    total = int(r.zcard(INCIDENTS_KEY))
    for start in range(0, total, _BACKFILL_CHUNK):
        ids = [i.decode() for i in r.zrange(INCIDENTS_KEY, start, start + _BACKFILL_CHUNK - 1)]
        pipe = r.pipeline(transaction=False)
        for incident, published in _published(svc, ids):
            index(pipe, {**incident, "updated_at": published[-1].published_at})
        pipe.execute()
    r.set(_INDEXED_KEY, 1)


def first_page(svc: Services, locale: str) -> dict[str, Any]:
    """The stored document (one Redis read), minus incidents resolved before the window.

    The window moves with the clock while the document waits for the next publish, so
    what has aged out is dropped here, as the banner drops its expired all-clears.
    """
    raw, dirty, pending = svc.redis.mget(document_key(locale), _DIRTY_KEY, _PENDING_KEY)
    dirty = dirty or pending
    if raw is None:
        refresh(svc)  # first use: build it now (or let the process building it finish)
    elif dirty:
        _drain(svc)  # a mark left after _MAX_ROUNDS: nobody else may be coming
    if raw is None or dirty:
        raw = svc.redis.get(document_key(locale)) or raw
    doc = json.loads(raw) if raw is not None else build(svc)[locale]
    cutoff = iso(time.time() - RECENT_DAYS * 86400)
    resolved = [i for i in doc["resolved"] if _entry_closed(i) >= cutoff]
    return {
        "open": doc["open"],
        "resolved": resolved,
        "next_page": 2 if doc["resolved_total"] > len(resolved) else None,
    }


def incidents(svc: Services, locale: str, page: int = 1) -> dict[str, Any]:
    """Open incidents (full timeline, newest first), then resolved ones, page by page.

    Page 1 lists those resolved in the last 14 days (at most ``PAGE_SIZE``) from the stored
    document; page N ≥ 2 goes on with the older history, ``PAGE_SIZE`` at a time, in a
    bounded number of Redis reads whatever its length.
    """
    first = first_page(svc, locale)
    if page == 1:
        return first
    cutoff = time.time() - RECENT_DAYS * 86400
    pipe = svc.redis.pipeline(transaction=False)
    pipe.zcount(RESOLVED_KEY, cutoff, "+inf")
    pipe.zcard(RESOLVED_KEY)
    recent, total = pipe.execute()
    start = min(PAGE_SIZE, int(recent)) + (page - 2) * PAGE_SIZE
    ids = [i.decode() for i in svc.redis.zrevrange(RESOLVED_KEY, start, start + PAGE_SIZE - 1)]
    resolved = [
        _incident(svc, incident, published, locale)
        for incident, published in _published(svc, ids)
        if closed_at(incident)
    ]
    resolved.sort(key=_entry_closed, reverse=True)
    return {
        "open": first["open"],
        "resolved": resolved,
        "next_page": page + 1 if int(total) > start + PAGE_SIZE else None,
    }


def _entry_closed(entry: dict[str, Any]) -> str:
    """When a document entry left the current view (ISO), "" while open. Entries stored
    before withdrawals existed have no ``closed_at``."""
    return entry.get("closed_at") or entry.get("resolved_at") or ""


def _incident(
    svc: Services, incident: dict[str, Any], published: list[Announcement], locale: str
) -> dict[str, Any]:
    standing = [a for a in published if a.withdrawn_at is None]
    latest = (standing or published)[-1]
    promise = promises.standing(incident, standing or published)  # none once resolved
    language = language_for(latest, locale, svc.plan.default_locale)
    updates = []
    for announcement in reversed(published):  # newest first
        lang = language_for(announcement, locale, svc.plan.default_locale)
        corrected = announcement.corrects_published_at
        updates.append(
            {
                "id": announcement.id,
                **content_for(announcement, lang),
                "language": lang,
                "status": announcement.status,
                "severity": announcement.severity,
                "published_at": iso(announcement.published_at),
                "corrects": announcement.corrects,
                "components": dict(announcement.components),  # the states it set
                "corrects_published_at": iso(corrected) if corrected else None,
                # In the open: what was withdrawn, when and why.
                "withdrawn": (
                    {"at": iso(announcement.withdrawn_at), "reason": announcement.withdrawn_reason}
                    if announcement.withdrawn_at
                    else None
                ),
            }
        )
    closed = closed_at(incident)
    return {
        "id": incident["id"],
        "title": content_for(latest, language)["title"],
        "status": incident["status"],
        "severity": incident["severity"],
        "opened_at": iso(incident["opened_at"]),
        "updated_at": iso(latest.published_at),
        "resolved_at": iso(incident["resolved_at"]) if incident.get("resolved_at") else None,
        "withdrawn_at": iso(incident["withdrawn_at"]) if incident.get("withdrawn_at") else None,
        "closed_at": iso(closed) if closed else None,
        "audiences": sorted(
            {n for a in standing or published for n in public_audiences(svc.plan, a.audiences)}
        ),
        "next_update_at": iso(promise.next_update_at)
        if promise and promise.next_update_at
        else None,
        "updates": updates,
    }


def audience_routes(svc: Services, locale: str) -> list[dict[str, Any]]:
    """Every public audience with its "how to reach us for your need" routes, in ``locale``.

    Internal audiences (``internal = true``: our own people) keep their routes to themselves.
    """
    return [
        {
            "audience": name,
            "description": audience.description_in(locale, svc.plan.default_locale),
            "routes": routes_for(svc.plan, [name], locale),
        }
        for name, audience in svc.plan.audiences.items()
        if audience.routes and not is_internal(svc.plan, name)
    ]
