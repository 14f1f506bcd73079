"""What customers will see of one announcement, per language: banner, SMS and email subject.

The Approvals page and the approvers' notice show it, so a second person decides on the
texts that go out — fitted to their limits, in every language of the plan — and not only
on the draft as typed. Rendered by the same renderer as the workers and the preview
(``rendering/preview.py``), but without reading any subscriber: a page of twenty pending
announcements must stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broadcaster.domain import visibility
from broadcaster.domain.announcement import Announcement
from broadcaster.rendering.messages import language_for

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only


def sms_audiences(svc: Services, announcement: Announcement) -> list[str]:
    """The audiences that get this announcement by SMS (the text names their routes)."""
    if not announcement.reaches("sms"):
        return []
    return [
        name
        for name in announcement.audiences
        if name in svc.plan.audiences and "sms" in svc.plan.audiences[name].channels
    ]


def on_banner(svc: Services, announcement: Announcement) -> bool:
    """Whether the announcement shows on the website banner (public and a banner channel)."""
    return announcement.reaches("banner") and not visibility.stays_inside(svc.plan, announcement)


def customer_view(
    svc: Services, announcement: Announcement, locales: list[str] | None = None
) -> list[dict[str, Any]]:
    """Per locale (the plan's, or ``locales``): banner line, SMS texts, email subject.

    Each entry: ``locale``, ``language`` (what the text is written in: the default when
    there is no translation), ``banner`` (``text``, ``cut``) or None when the announcement
    is not on the banner, ``sms`` (one per SMS audience: ``audience``, ``text``,
    ``segments``, ``encoding``, ``chars``, ``max_segments``, ``cut``) and ``subject``
    (None without email).
    """
    plan, renderer = svc.plan, svc.renderer
    banner = on_banner(svc, announcement)
    public = visibility.public_audiences(plan, announcement.audiences)
    texted = sms_audiences(svc, announcement)
    emailed = [
        name
        for name in announcement.audiences
        if name in plan.audiences and "email" in plan.audiences[name].channels
    ]
    mail = announcement.reaches("email") and bool(emailed)
    view = []
    for locale in locales or plan.locales:
        language = language_for(announcement, locale, plan.default_locale)
        entry: dict[str, Any] = {"locale": locale, "language": language, "banner": None}
        if banner:
            rendering = renderer.render("banner", announcement, public, locale)
            entry["banner"] = {
                "text": rendering.content["text"],
                "cut": bool(rendering.measures.get("cut")),
            }
        entry["sms"] = []
        for audience in texted:
            rendering = renderer.render("sms", announcement, [audience], locale)
            measures = rendering.measures
            entry["sms"].append(
                {
                    "audience": audience,
                    "text": rendering.content["text"],
                    "segments": measures.get("segments"),
                    "encoding": measures.get("encoding"),
                    "chars": measures.get("chars"),
                    "max_segments": measures.get("max_segments"),
                    "cut": bool(measures.get("cut")),
                }
            )
        entry["subject"] = None
        if mail:
            rendering = renderer.render("email", announcement, emailed[:1], locale)
            entry["subject"] = rendering.content["subject"]
        view.append(entry)
    return view
