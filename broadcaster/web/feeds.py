"""The status feeds: Atom (``/status.atom``) and RSS 2.0 (``/status.rss``), each for the
whole page or, with ``?component=ID``, for the incidents that touched one component.

One entry per published public announcement, newest first, from the status document
(``rendering/status.py``: open incidents and those resolved in the last 14 days). A
withdrawn update stays, saying so and why. Entries render one by one
(``rendering/isolation.py``): one a feed library refuses costs itself, not the feed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from flask import Blueprint, Response, request

from broadcaster.rendering import isolation, status
from broadcaster.rendering.i18n import gettext_for
from broadcaster.services import Services, services
from broadcaster.web.public import cacheable, json_error, locale_of

bp = Blueprint("feeds", __name__)
EPOCH = "1970-01-01T00:00:00Z"


@bp.get("/status.atom")
def status_atom() -> Response:
    """An Atom feed: one entry per published announcement, newest first."""
    return _answer("atom")


@bp.get("/status.rss")
def status_rss() -> Response:
    """The same feed as RSS 2.0."""
    return _answer("rss")


def _answer(kind: str) -> Response:
    svc = services()
    wanted = request.args.get("component", "")
    component = next((c for c in svc.plan.components if c.id == wanted), None)
    if wanted and component is None:
        known = ", ".join(c.id for c in svc.plan.components) or "none: the plan declares none"
        return json_error(404, f"unknown component {wanted!r} (known: {known})")
    locale = locale_of(svc)
    name = component.name_for(locale, svc.plan.default_locale) if component else None
    feed = _feed(svc, locale, kind, wanted, name)
    body = feed.atom_str(pretty=True) if kind == "atom" else feed.rss_str(pretty=True)
    mimetype = "application/atom+xml" if kind == "atom" else "application/rss+xml"
    return cacheable(body, mimetype, int(svc.config["BANNER_MAX_AGE"]))


def _feed(svc: Services, locale: str, kind: str, component: str, name: str | None) -> FeedGenerator:
    data = status.first_page(svc, locale)
    _ = gettext_for(locale)
    query = f"?component={component}" if component else ""
    feed = FeedGenerator()
    feed.id(f"{svc.renderer.status_url}{query}")
    title = f"{svc.plan.organisation} status"
    feed.title(f"{title}: {name}" if name else title)
    # RFC 4287 4.1.1: an Atom feed and its entries name an author: us. (RSS's author must
    # be an email address, which we have none to give.)
    author = {"name": svc.plan.organisation, "uri": svc.renderer.public_url}
    if kind == "atom":
        feed.author(author)
    # Self first: RSS's <link> is the last one given, and must be the page.
    feed.link(href=f"{svc.renderer.public_url}/status.{kind}{query}", rel="self")
    feed.link(href=svc.renderer.status_url, rel="alternate")
    feed.description(feed.title())  # RSS requires one
    feed.language(locale)
    entries = [
        (incident, update)
        for group in (data["open"], data["resolved"])
        for incident in group
        if not component or _touches(incident, component)
        for update in incident["updates"]
    ]
    entries.sort(key=lambda pair: pair[1]["published_at"], reverse=True)

    def add(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
        incident, update = pair
        entry = FeedEntry()
        entry.id(f"{svc.renderer.status_url}#{update['id']}")
        entry.link(href=f"{svc.renderer.status_url}?lang={locale}#{incident['id']}")
        # A datetime, not the string: feedgen would parse each string with dateutil,
        # most of a feed's rendering time.
        published = _when(update["published_at"])
        entry.published(published)
        withdrawn = update.get("withdrawn")
        if withdrawn:  # in the open: the entry stays, updated, saying so and why
            title = f"{_('Withdrawn')}: {update['title']}"
            text = f"{_('Withdrawn')}: {withdrawn['reason']}\n\n{update['body']}"
            entry.updated(_when(withdrawn["at"]))
            entry.category(term="withdrawn")
        else:
            title, text = update["title"], update["body"]
            entry.updated(published)
        entry.title(title)
        if kind == "atom":
            entry.author(author)
            entry.content(text, type="text")
        else:
            entry.description(text)
        entry.category(term=update["status"])
        # Its XML now: a value lxml refuses costs this entry, not the feed.
        entry.atom_entry() if kind == "atom" else entry.rss_entry()
        feed.add_entry(entry, order="append")

    isolation.each(svc.redis, f"status.{kind}", entries, add, lambda pair: pair[1]["id"])
    # From the data, not the clock: the same feed keeps its ETag until something changes.
    latest = max((e.updated() for e in feed.entry()), default=None) or _when(EPOCH)
    feed.updated(latest)
    feed.lastBuildDate(latest)
    return feed


def _touches(incident: dict[str, Any], component: str) -> bool:
    """Whether any update of the incident set a state for ``component``."""
    return any(component in (u.get("components") or {}) for u in incident["updates"])


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
