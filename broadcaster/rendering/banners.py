"""The website banner: one precomputed JSON value per (audience, locale) in Redis.

Recomputed whenever an announcement is published or withdrawn, so ``/banner.json`` is one
Redis GET (no rendering on the hot path) and reflects a change at once.

A site shows at most one banner: the most pressing open incident, with "+N more" (the other
open ones) linking to the status page. An incident shows while it is open and, once
resolved, as an "all clear" for ``BANNER_ALL_CLEAR_SECONDS`` (default 30 minutes); the
stored value carries each all-clear's end, so the read drops it when its time is up without
any job or recomputation. A banner shows only in the languages its latest update is written
in: a Dutch site never shows an English-only message. Withdrawn announcements never show;
only public announcements count, and internal audiences have no banner
(``domain/visibility.py``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import redis
from flask import current_app, has_app_context

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcements import ACTIVE_KEY, BANNER_INCIDENTS_KEY
from broadcaster.domain.plan import Plan
from broadcaster.domain.visibility import is_internal, is_public, public_audiences, public_incident
from broadcaster.infra import microcache
from broadcaster.rendering import isolation
from broadcaster.rendering.corrections import correction_note
from broadcaster.rendering.i18n import gettext_for
from broadcaster.rendering.messages import language_for, routes_for
from broadcaster.rendering.status import iso

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2, "info": 3}
ALL_AUDIENCES = ""
# Stored per (audience, locale): the leading open incident, or else the all-clears in line
# (the next shows when the first one's time is up). A site shows one; the status page all.
MAX_BANNERS = 5
_DIRTY_KEY = "bc:banner:dirty"
_REFRESH_LOCK = "bc:banner:refreshing"


def banner_key(audience: str, locale: str) -> str:
    return f"bc:banner:{audience}:{locale}"


def _banner_incidents(svc: Services) -> list[tuple[dict[str, Any], list[Announcement]]]:
    """(incident, its published timeline) for every incident that may show on the banner."""
    now = time.time()
    keep = float(svc.config["BANNER_ALL_CLEAR_SECONDS"])
    ids = sorted(raw.decode() for raw in svc.redis.smembers(ACTIVE_KEY))
    found = []
    for stored, timeline in svc.announcements.with_timelines(ids):
        # Internal announcements never show: the banner is as public as the status page, and
        # an internal "resolved" must not end a banner the public was never told is over.
        public = public_incident(svc.plan, stored, timeline)
        incident, shown = public or (stored, [])
        standing = [a for a in shown if a.withdrawn_at is None]  # withdrawn: never again
        over = incident.get("resolved_at") and now - incident["resolved_at"] > keep
        if over or (shown and not standing):
            # The all-clear has had its time, or everything was withdrawn: until a new
            # publish files the incident again, no refresh needs to read it.
            svc.redis.srem(ACTIVE_KEY, incident["id"])
            svc.redis.srem(BANNER_INCIDENTS_KEY, incident["id"])
            continue
        if any("banner" in a.channels for a in standing):
            found.append((incident, standing))
    return found


def _ranked(
    plan: Plan,
    audience: str,
    locale: str,
    incidents: list[tuple[dict[str, Any], list[Announcement]]],
    r: redis.Redis | None = None,
) -> tuple[list[tuple[dict[str, Any], Announcement, list[str]]], int]:
    """(incident, latest announcement, banner audiences) to store for one audience and
    locale, and how many open incidents they see.

    Open before all-clear, then by severity, then the latest update first. While anything
    is open only the first is kept (the rest are "+N more"); otherwise the all-clears, at
    most ``MAX_BANNERS``, so a storm of incidents costs a bounded number of renderings.
    An incident whose latest update is not written in ``locale`` is not there at all.
    """

    def candidate(
        item: tuple[dict[str, Any], list[Announcement]],
    ) -> tuple[tuple[bool, int, float], dict[str, Any], Announcement, list[str]] | None:
        incident, published = item
        with_banner = [a for a in published if "banner" in a.channels]
        audiences = sorted(
            {name for a in with_banner for name in public_audiences(plan, a.audiences)}
        )
        if audience and audience not in audiences:
            return None
        latest = published[-1]
        if language_for(latest, locale, plan.default_locale) != locale:
            return None  # another language's message: never on this locale's sites
        rank = (
            bool(incident.get("resolved_at")),
            SEVERITY_ORDER[incident["severity"]],
            -float(latest.published_at or 0),
        )
        return rank, incident, latest, audiences

    ranked = isolation.each(r, "banner", incidents, candidate, lambda item: item[0]["id"])
    candidates = [c for c in ranked if c is not None]
    candidates.sort(key=lambda item: item[0])
    open_count = sum(1 for rank, *_ in candidates if not rank[0])
    kept = candidates[:1] if open_count else candidates[:MAX_BANNERS]
    return [(inc, latest, auds) for _, inc, latest, auds in kept], open_count


def build(
    svc: Services,
    audience: str,
    locale: str,
    incidents: list[tuple[dict[str, Any], list[Announcement]]],
) -> list[dict[str, Any]]:
    """The banners stored for one audience in one locale, most pressing first (a site
    shows the first whose time is not up: ``current``)."""
    keep = float(svc.config["BANNER_ALL_CLEAR_SECONDS"])
    ranked_list, open_count = _ranked(svc.plan, audience, locale, incidents, svc.redis)
    _ = gettext_for(locale)

    def banner(ranked: tuple[dict[str, Any], Announcement, list[str]]) -> dict[str, Any]:
        incident, latest, audiences = ranked
        shown_to = [audience] if audience else audiences
        rendering = svc.renderer.render("banner", latest, shown_to, locale)
        resolved_at = incident.get("resolved_at")
        more = open_count - 1 if not resolved_at else 0
        return {
            "incident_id": incident["id"],
            "announcement_id": latest.id,
            "key": f"{incident['id']}:{latest.id}",  # changes with every update: re-show
            "severity": incident["severity"],
            "status": incident["status"],
            "all_clear": bool(resolved_at),
            "title": rendering.content["title"],
            "text": rendering.content["text"],
            "updated_at": iso(latest.published_at),
            "expires_at": iso(resolved_at + keep) if resolved_at else None,
            "link": f"{svc.renderer.status_url}?lang={rendering.locale}#{incident['id']}",
            "locale": rendering.locale,
            "routes": routes_for(svc.plan, shown_to, locale),
            "correction": correction_note(svc.plan, latest, locale),
            # The other open incidents: the status page lists them all.
            "more": {
                "count": more,
                "label": _("+%(count)s more", count=more),
                "link": f"{svc.renderer.status_url}?lang={locale}#current",
            }
            if more
            else None,
        }

    return isolation.each(svc.redis, "banner", ranked_list, banner, lambda item: item[1].id)


def after_publish(svc: Services, announcement: Announcement) -> None:
    """Refresh the banners at once if this publish changes them.

    Only announcements on the banner, or follow-ups of an incident that is on it (a
    resolution without the banner channel still turns it into an all-clear), change it;
    for the rest a publish costs no banner refresh at all.
    """
    if not is_public(svc.plan, announcement):
        return  # internal: not on the banner, and changes nothing that is
    if "banner" in announcement.channels or svc.redis.sismember(
        BANNER_INCIDENTS_KEY, announcement.incident_id
    ):
        refresh(svc)


def refresh(svc: Services) -> None:
    """Bring every (audience, locale) banner value up to date; called after each publish.

    Single-flight: while one process recomputes, others only mark the banners dirty and
    return, and the one recomputing goes round again until nothing is dirty. A burst of
    publishes costs a few recomputations, not one each, and nobody's change is missed.
    """
    r = svc.redis
    r.set(_DIRTY_KEY, 1)
    while r.exists(_DIRTY_KEY):
        token = uuid.uuid4().hex
        if not r.set(_REFRESH_LOCK, token, nx=True, ex=30):
            return  # the holder sees our dirty mark before it lets go
        try:
            while r.getdel(_DIRTY_KEY):
                _recompute(svc)
        finally:
            if r.get(_REFRESH_LOCK) == token.encode():
                r.delete(_REFRESH_LOCK)


def _recompute(svc: Services) -> None:
    incidents = _banner_incidents(svc)  # read once, rendered for every audience and locale
    pipe = svc.redis.pipeline()
    public = [name for name in svc.plan.audiences if not is_internal(svc.plan, name)]
    for audience in (ALL_AUDIENCES, *public):
        for locale in svc.plan.locales:
            value = build(svc, audience, locale, incidents)
            pipe.set(banner_key(audience, locale), json.dumps(value))
    pipe.execute()
    if has_app_context():  # after the write: a miss from now on reads the new banners
        microcache.clear(current_app)


def forget(svc: Services) -> None:
    """Drop every stored banner value: the next read of each builds it again."""
    keys = list(svc.redis.scan_iter(match=banner_key("*", "*"), count=500))
    if keys:
        svc.redis.delete(*keys)


def current(svc: Services, audience: str, locale: str) -> list[dict[str, Any]]:
    """The banner a site shows: the first stored one whose time is not up (no
    recomputation; at most ``MAX_BANNERS`` compared), as a list of at most one.

    None for an internal audience: its banner would be a public page about our own people.
    """
    if audience and is_internal(svc.plan, audience):
        return []
    raw = svc.redis.get(banner_key(audience, locale))
    if raw is None:
        refresh(svc)
        raw = svc.redis.get(banner_key(audience, locale)) or b"[]"
    now = iso(time.time())
    return [b for b in json.loads(raw) if not b["expires_at"] or b["expires_at"] > now][:1]
