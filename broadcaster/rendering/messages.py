"""Render one announcement for one channel, audience set and locale, from ``templates/``.

Every channel is rendered from the same facts within its own hard limits: email subject
within 78 characters; SMS within the plan's segment cap, social posts within each
network's limit and the banner as one line, each composed by ``compose_text`` so the
promise and the link always stay. Fixed strings come from the Babel catalogues;
announcement text is escaped wherever HTML is produced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from jinja2.sandbox import ImmutableSandboxedEnvironment

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.channel_order import asking_audiences
from broadcaster.domain.plan import Plan
from broadcaster.rendering import contacts, exercise, segments, voice_text, whatsapp
from broadcaster.rendering.clock import format_time, zone_note
from broadcaster.rendering.compose_text import (
    announcement_parts,
    compose,
    route_for,
    with_confirm,
)
from broadcaster.rendering.corrections import correction_note
from broadcaster.rendering.i18n import N_, gettext_for
from channels import PERSONAL
from channels.base import CONFIRM_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER

SUBJECT_MAX = PERSONAL["email"].subject_max
# Marked for extraction: ``_()`` of a variable would not be found by ``pybabel extract``.
SEVERITY_LABELS = {
    "info": N_("Info"),
    "minor": N_("Minor"),
    "major": N_("Major"),
    "critical": N_("Critical"),
}
STATUS_LABELS = {
    "investigating": N_("Investigating"),
    "identified": N_("Identified"),
    "monitoring": N_("Monitoring"),
    "resolved": N_("Resolved"),
    # A scheduled maintenance's transitions (delivery/maintenances.py).
    "scheduled": N_("Scheduled"),
    "in_progress": N_("In progress"),
    "completed": N_("Completed"),
    "cancelled": N_("Cancelled"),
}
SEVERITY_COLOURS = {
    "critical": "#b00020",
    "major": "#c0392b",
    "minor": "#9a6700",
    "info": "#2e6da4",
}

_WHITESPACE = re.compile(r"\s+")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
# C0/C1 control characters left after whitespace is collapsed (ESC, NUL, BEL…): a header
# value may not carry them, and no reader wants them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass
class Rendering:
    """A channel's content for one audience set and locale, with its measurements."""

    content: dict[str, str]
    locale: str  # the language actually used (the default when no translation exists)
    measures: dict[str, Any] = field(default_factory=dict)


def language_for(announcement: Announcement, locale: str, default_locale: str) -> str:
    """The subscriber's locale if the announcement speaks it, else the default language."""
    if locale == default_locale or locale in (announcement.translations or {}):
        return locale
    return default_locale


def content_for(announcement: Announcement, locale: str) -> dict[str, str]:
    """Title and body in ``locale``, falling back to the original text."""
    translated = (announcement.translations or {}).get(locale) or {}
    return {
        "title": translated.get("title") or announcement.title,
        "body": translated.get("body") or announcement.body,
    }


def routes_for(plan: Plan, audiences: list[str], locale: str) -> list[dict[str, str]]:
    """The routes of every audience, merged without duplicates, labels in ``locale``."""
    seen: set[tuple[str, str, str]] = set()
    routes = []
    wanted = set(audiences)
    # Plan order, not the caller's: the plan lists the most important audience first.
    for name in (n for n in plan.audiences if n in wanted):
        for route in plan.audiences[name].routes:
            texts = route.texts_in(locale, plan.default_locale)
            key = (texts["need"], texts["channel"], texts["contact"])
            if key not in seen:
                seen.add(key)
                routes.append(texts)
    return routes


def _marked(ctx: dict[str, Any], head: str) -> str:
    return f"{ctx['exercise']}: {head}" if ctx.get("exercise") else head


def one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


class Renderer:
    """Renders announcements with Jinja templates in a sandbox (HTML autoescaped)."""

    def __init__(self, app: Flask, plan: Plan) -> None:
        # A sandboxed environment: templates are ours, but they print user text, and a
        # sandbox makes sure nothing in that text can reach Python objects.
        self.env = ImmutableSandboxedEnvironment(
            loader=app.jinja_loader,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            keep_trailing_newline=False,
        )
        # Route contacts as tel:/https/mailto: links, numbers without a country code read
        # in the plan's region.
        self.env.filters["contact_link"] = lambda contact: contacts.contact_html(
            contact, self.plan.default_region
        )
        self.plan = plan
        self.public_url = str(app.config["PUBLIC_URL"]).rstrip("/")
        self.status_url = self.public_url + "/status"

    def context(
        self, announcement: Announcement, audiences: list[str], locale: str
    ) -> dict[str, Any]:
        """Everything a template may print, in ``locale``."""
        _ = gettext_for(locale)
        routes = routes_for(self.plan, audiences, locale)
        tz = self.plan.timezone
        # Looked up first: pybabel would take a key inside _() for a message to translate.
        severity_label = SEVERITY_LABELS[announcement.severity]
        status_label = STATUS_LABELS[announcement.status]
        updated = announcement.published_at or announcement.created_at
        content = content_for(announcement, locale)
        title = one_line(content["title"])
        body = content["body"].replace("\r\n", "\n").replace("\r", "\n")
        return {
            **content,
            # Titles end a sentence in one-line formats; don't add a dot after "?" or ".".
            "headline": title if title.endswith((".", "!", "?", "…")) else title + ".",
            "paragraphs": [p.strip() for p in _PARAGRAPH.split(body) if p.strip()],
            "_": _,
            "locale": locale,
            "severity": announcement.severity,
            "severity_label": _(severity_label),
            "status_label": _(status_label),
            "colour": SEVERITY_COLOURS.get(announcement.severity, "#2e6da4"),
            "corrects": announcement.corrects,
            "correction": correction_note(self.plan, announcement, locale),
            # Times without their zone: the message names it once, in ``zone_note``.
            "updated": format_time(updated, locale, tz) if updated else "",
            "next_update": (
                format_time(announcement.next_update_at, locale, tz)
                if announcement.next_update_at
                else ""
            ),
            "zone_note": zone_note(locale, tz),
            "organisation": self.plan.organisation,
            "status_url": self.status_url,
            "routes": routes,
            # The one route short texts show: the need this announcement is about.
            "route": route_for(self.plan, audiences, locale, announcement.need),
            "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
            # An audience that must confirm: the message asks for the reply (or the click).
            "confirm": bool(asking_audiences(self.plan, announcement, audiences)),
            "confirm_url": CONFIRM_PLACEHOLDER,
        }

    def _template(self, name: str, ctx: dict[str, Any]) -> str:
        return self.env.get_template(name).render(ctx)

    def render(
        self, channel: str, announcement: Announcement, audiences: list[str], locale: str
    ) -> Rendering:
        """The channel's content for this audience set, in the subscriber's ``locale``."""
        language = language_for(announcement, locale, self.plan.default_locale)
        ctx = self.context(announcement, audiences, language)
        # A drill's subject and SMS start with the exercise word in the reader's language,
        # inside their limits (``exercise.marked`` then finds it there).
        ctx["exercise"] = exercise.word(locale) if announcement.exercise else ""
        if channel == "email":
            return self._email(announcement, ctx, language)
        if channel == "sms":
            return self._sms(announcement, ctx, language)
        if channel == "whatsapp":  # a template and free text: rendering/whatsapp.py
            return whatsapp.render(self, announcement, audiences, language, ctx)
        if channel == "voice":  # composed for listening: no links, numbers spelled
            content, measures = voice_text.texts(self.plan, announcement, audiences, ctx, language)
            return Rendering(content, language, measures)
        if channel in segments.SOCIAL_LIMITS:
            return self._social(channel, ctx, language)
        if channel == "banner":
            # The link is not in the line: the banner shows it as its own button.
            line = compose(announcement_parts(ctx), lambda s: len(s) <= segments.BANNER_MAX)
            return Rendering(
                {"title": one_line(ctx["title"]), "text": line.text, "link": self.status_url},
                language,
                {"length": len(line.text), "limit": segments.BANNER_MAX, **line.measures()},
            )
        raise ValueError(f"no renderer for channel {channel!r}")

    def _email(self, announcement: Announcement, ctx: dict[str, Any], language: str) -> Rendering:
        # One line, no control characters: a subject can never inject a header. Only the
        # title is shortened, so a long unbroken title is cut inside rather than dropped.
        prefix = _marked(ctx, one_line(self.plan.organisation)) + ": "
        title, cut = segments.shorten(
            _CONTROL.sub("", one_line(ctx["title"])), lambda s: len(prefix) + len(s) <= SUBJECT_MAX
        )
        subject = prefix + title
        content = {
            "subject": subject,
            "text": self._template("email/announcement.txt", ctx),
            "html": self._template("email/announcement.html", ctx),
            "announcement_id": announcement.id,
        }
        return Rendering(
            content,
            language,
            {"subject_length": len(subject), "subject_limit": SUBJECT_MAX, "cut": cut},
        )

    def _social(self, network: str, ctx: dict[str, Any], language: str) -> Rendering:
        limit = segments.SOCIAL_LIMITS[network]
        parts = announcement_parts(
            ctx, one_line(self.plan.organisation) + " ·", self.status_url, segments.SOCIAL_SEPARATOR
        )
        post = compose(parts, lambda s: segments.social_length(s, network) <= limit)
        return Rendering(
            {"text": post.text},
            language,
            {
                "length": segments.social_length(post.text, network),
                "limit": limit,
                **post.measures(),
            },
        )

    def _sms(self, announcement: Announcement, ctx: dict[str, Any], language: str) -> Rendering:
        head = _marked(ctx, one_line(self.plan.organisation)) + ":"
        parts = with_confirm(announcement_parts(ctx, head, self.status_url), ctx)
        cap = self.plan.sms_max_segments
        # "..." even in UCS-2 (two units more): "…" would turn a GSM-7 message into UCS-2 and
        # cut the segment size from 153 to 67.
        sms = compose(parts, lambda s: segments.sms_cost(s).segments <= cap, segments.ELLIPSIS_GSM)
        cost = segments.sms_cost(sms.text)
        return Rendering(
            # The id travels with the message, as for email, so the SMS channel can ask
            # Twilio for a status callback that names the delivery.
            {"text": sms.text, "announcement_id": announcement.id},
            language,
            {
                "encoding": cost.encoding,
                "segments": cost.segments,
                "units": cost.units,
                "chars": cost.chars,
                "max_segments": cap,
                **sms.measures(),
            },
        )
