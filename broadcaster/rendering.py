"""Render one announcement for one channel, audience set and locale, from ``templates/``."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from broadcaster.plan import Plan

SUBJECT_MAX = 78
SMS_MAX_CHARS = 306  # two GSM-7 segments; exact segment counting comes with the plan policy

_WHITESPACE = re.compile(r"\s+")


def content_for(announcement: dict[str, Any], locale: str) -> dict[str, str]:
    """Title and body in ``locale``, falling back to the original text."""
    translated = announcement.get("translations", {}).get(locale) or {}
    return {
        "title": translated.get("title") or announcement["title"],
        "body": translated.get("body") or announcement["body"],
    }


def routes_for(plan: Plan, audiences: list[str], locale: str) -> list[dict[str, str]]:
    """The routes of every audience, merged without duplicates, labels in ``locale``."""
    seen: set[tuple[str, str, str]] = set()
    routes = []
    for name in audiences:
        audience = plan.audiences.get(name)
        for route in audience.routes if audience else ():
            need = route.need_for(locale, plan.default_locale)
            key = (need, route.channel, route.contact)
            if key not in seen:
                seen.add(key)
                routes.append(
                    {
                        "need": need,
                        "channel": route.channel,
                        "contact": route.contact,
                        "hours": route.hours,
                    }
                )
    return routes


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,.;:-")
    return cut + "…"


class Renderer:
    """Renders announcements with the app's Jinja environment (HTML autoescaped)."""

    def __init__(self, app: Flask, plan: Plan) -> None:
        self.env = app.jinja_env
        self.plan = plan
        self.status_url = str(app.config["PUBLIC_URL"]).rstrip("/") + "/status"

    def _context(
        self, announcement: dict[str, Any], audiences: list[str], locale: str
    ) -> dict[str, Any]:
        routes = routes_for(self.plan, audiences, locale)
        return {
            **content_for(announcement, locale),
            "locale": locale,
            "severity": announcement["severity"],
            "status_label": announcement["status"].capitalize(),
            "organisation": self.plan.organisation,
            "status_url": self.status_url,
            "routes": routes,
            "top_route": routes[0] if routes else None,
        }

    def render(
        self, channel: str, announcement: dict[str, Any], audiences: list[str], locale: str
    ) -> dict[str, str]:
        """The channel's content fields for this audience set and locale."""
        ctx = self._context(announcement, audiences, locale)
        if channel == "email":
            # One line, no control characters: a subject can never inject a header.
            subject = _WHITESPACE.sub(" ", f"{self.plan.organisation}: {ctx['title']}")
            return {
                "subject": shorten(subject, SUBJECT_MAX),
                "text": self.env.get_template("email/announcement.txt").render(ctx),
                "html": self.env.get_template("email/announcement.html").render(ctx),
                "announcement_id": announcement["id"],
            }
        if channel == "sms":
            text = _WHITESPACE.sub(
                " ", self.env.get_template("sms/announcement.txt").render(ctx)
            ).strip()
            link = " " + self.status_url
            return {"text": shorten(text, SMS_MAX_CHARS - len(link)) + link}
        raise ValueError(f"no renderer for channel {channel!r}")
