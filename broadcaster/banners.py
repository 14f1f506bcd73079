"""The website banner: one precomputed JSON value per (audience, locale) in Redis.

Recomputed whenever an announcement is published, so ``/banner.json`` is one Redis GET
(no rendering on the hot path) and reflects a publish at once. An incident shows while it
is open and, once resolved, as an "all clear" for ``BANNER_ALL_CLEAR_SECONDS``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from broadcaster.announcements import ACTIVE_KEY
from broadcaster.rendering import routes_for
from broadcaster.services import Services

SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2, "info": 3}
ALL_AUDIENCES = ""


def banner_key(audience: str, locale: str) -> str:
    return f"bc:banner:{audience}:{locale}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _banner_incidents(svc: Services) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(incident, its published timeline) for every incident that may show on the banner."""
    store = svc.announcements
    now = time.time()
    keep = float(svc.config["BANNER_ALL_CLEAR_SECONDS"])
    found = []
    for raw in svc.redis.smembers(ACTIVE_KEY):
        incident_id = raw.decode()
        incident = store.get_incident(incident_id)
        if incident.get("resolved_at") and now - incident["resolved_at"] > keep:
            svc.redis.srem(ACTIVE_KEY, incident_id)  # the all-clear has had its time
            continue
        published = [a for a in store.timeline(incident_id) if a["state"] == "published"]
        if any("banner" in a["channels"] for a in published):
            found.append((incident, published))
    return found


def build(
    svc: Services,
    audience: str,
    locale: str,
    incidents: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    """The banners one audience sees in one locale, most severe first."""
    ranked = []
    keep = float(svc.config["BANNER_ALL_CLEAR_SECONDS"])
    for incident, published in incidents:
        with_banner = [a for a in published if "banner" in a["channels"]]
        audiences = sorted({name for a in with_banner for name in a["audiences"]})
        if audience and audience not in audiences:
            continue
        latest = published[-1]
        rendering = svc.renderer.render(
            "banner", latest, [audience] if audience else audiences, locale
        )
        resolved_at = incident.get("resolved_at")
        rank = (bool(resolved_at), SEVERITY_ORDER[incident["severity"]], -latest["published_at"])
        ranked.append(
            (
                rank,
                {
                    "incident_id": incident["id"],
                    "announcement_id": latest["id"],
                    "key": f"{incident['id']}:{latest['id']}",  # changes with every update: re-show
                    "severity": incident["severity"],
                    "status": incident["status"],
                    "all_clear": bool(resolved_at),
                    "title": rendering.content["title"],
                    "text": rendering.content["text"],
                    "updated_at": iso(latest["published_at"]),
                    "expires_at": iso(resolved_at + keep) if resolved_at else None,
                    "link": f"{svc.renderer.status_url}?lang={rendering.locale}#{incident['id']}",
                    "locale": rendering.locale,
                    "routes": routes_for(svc.plan, [audience] if audience else audiences, locale),
                },
            )
        )
    ranked.sort(key=lambda pair: pair[0])
    return [banner for _, banner in ranked]


def refresh(svc: Services) -> None:
    """Recompute every (audience, locale) banner value; called after each publish."""
    incidents = _banner_incidents(svc)  # read once, rendered for every audience and locale
    pipe = svc.redis.pipeline()
    for audience in (ALL_AUDIENCES, *svc.plan.audiences):
        for locale in svc.plan.locales:
            value = build(svc, audience, locale, incidents)
            pipe.set(banner_key(audience, locale), json.dumps(value))
    pipe.execute()


def current(svc: Services, audience: str, locale: str) -> list[dict[str, Any]]:
    """The stored banners, minus all-clears whose time is up (no recomputation)."""
    raw = svc.redis.get(banner_key(audience, locale))
    if raw is None:
        refresh(svc)
        raw = svc.redis.get(banner_key(audience, locale)) or b"[]"
    now = iso(time.time())
    return [b for b in json.loads(raw) if not b["expires_at"] or b["expires_at"] > now]
