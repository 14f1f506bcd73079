"""The message staff get before the customers: the agent brief of one announcement.

Facts, where to send customers (the customer audiences' routes), what not to promise, and
a paste-ready reply in every language, headed by when the customers hear it. Rendered in
the staff member's language (``templates/staff/``): the whole brief by email and on staff
webhooks (Slack or JSON), its head, what not to promise and a link to the full brief by SMS.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from babel import Locale, UnknownLocaleError

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.ledger import staff_ledger_id
from broadcaster.rendering import segments
from broadcaster.rendering.brief import announcement_brief
from broadcaster.rendering.i18n import gettext_for
from broadcaster.rendering.messages import (
    SEVERITY_COLOURS,
    SEVERITY_LABELS,
    STATUS_LABELS,
    SUBJECT_MAX,
    Rendering,
    one_line,
)
from channels.base import UNSUBSCRIBE_PLACEHOLDER

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def language_name(language: str, reader: str) -> str:
    """``Nederlands (nl)`` as a reader of ``reader`` calls it; the code if Babel has no name."""
    try:
        name = Locale.parse(language).get_display_name(Locale.parse(reader))
    except (UnknownLocaleError, ValueError, TypeError):
        name = None
    return f"{name} ({language})" if name else language


def context(svc: Services, announcement: Announcement, locale: str) -> dict[str, Any]:
    """What the staff templates print, in ``locale``."""
    _ = gettext_for(locale)
    brief = announcement_brief(svc, announcement, locale)
    staff, cap = svc.plan.staff, svc.config.get("STAFF_LEAD_MAX")
    lead = staff.lead_for(announcement.preapproved, cap) if staff else 0
    lead_line = (
        _("Customers hear this %(seconds)s seconds after staff.", seconds=lead)
        if lead
        else _("Customers hear this now, right after staff.")
    )
    seen: set[str] = set()
    replies = []
    for item in brief["replies"]:  # one per language actually written, not per locale
        if item["language"] not in seen:
            seen.add(item["language"])
            replies.append({**item, "name": language_name(item["language"], locale)})
    groups = []
    for group in brief["routes"]:
        audience = svc.plan.audiences.get(group["audience"])
        label = (
            audience.description_in(locale, svc.plan.default_locale) if audience else ""
        ) or group["audience"]
        if group["routes"]:
            groups.append({"label": label, "routes": group["routes"]})
    severity_label = SEVERITY_LABELS[announcement.severity]
    status_label = STATUS_LABELS[announcement.status]
    body = brief["facts"].replace("\r\n", "\n").replace("\r", "\n")
    return {
        "_": _,
        "locale": locale,
        "brief": brief,
        "heading": _("Staff brief: %(title)s", title=one_line(brief["title"])),
        "lead_line": lead_line,
        "severity_label": _(severity_label),
        "status_label": _(status_label),
        "colour": SEVERITY_COLOURS.get(announcement.severity, "#2e6da4"),
        "organisation": svc.plan.organisation,
        "paragraphs": [p.strip() for p in _PARAGRAPH.split(body) if p.strip()],
        "groups": groups,
        "replies": replies,
        "brief_url": f"{svc.renderer.public_url}/admin/incidents/{announcement.incident_id}#brief",
        # Staff may opt out of email like anyone (their own link, filled in per person).
        "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
    }


def _template(svc: Services, name: str, ctx: dict[str, Any]) -> str:
    return svc.renderer.env.get_template(name).render(ctx)


def text(svc: Services, announcement: Announcement, locale: str) -> str:
    """The whole brief as plain text, for staff webhooks (no personal unsubscribe link)."""
    ctx = {**context(svc, announcement, locale), "unsubscribe_url": ""}
    return _template(svc, "staff/brief.txt", ctx).strip()


def render(svc: Services, channel: str, announcement: Announcement, locale: str) -> Rendering:
    """The brief for one staff member's ``channel`` (email or SMS), in their ``locale``."""
    ctx = context(svc, announcement, locale)
    if channel == "email":
        _ = ctx["_"]
        title, _cut = segments.shorten(
            _CONTROL.sub("", one_line(ctx["brief"]["title"])),
            lambda s: len(_("Staff brief: %(title)s", title=s)) <= SUBJECT_MAX,
        )
        content = {
            "subject": one_line(_("Staff brief: %(title)s", title=title)),
            "text": _template(svc, "staff/brief.txt", ctx).strip() + "\n",
            "html": _template(svc, "staff/brief.html", ctx),
            # The staff ledger's id: receipts for the brief move staff deliveries only.
            "announcement_id": staff_ledger_id(announcement.id),
        }
        return Rendering(content, locale)
    if channel == "sms":
        _ = ctx["_"]
        head = one_line(f"{ctx['heading'].rstrip('.')}. {ctx['lead_line']}") + " "
        lines = ctx["brief"]["do_not_promise"]
        body = one_line(ctx["brief"]["facts"])
        if lines:
            body = one_line(f"{_('What not to promise')}: {'; '.join(lines)}.") + " " + body
        tail = " " + one_line(f"{_('Full brief')}: {ctx['brief_url']}")
        sms, cost, _cut = segments.fit_sms(head, body, tail, svc.plan.sms_max_segments)
        return Rendering(
            {"text": sms, "announcement_id": staff_ledger_id(announcement.id)},
            locale,
            {"segments": cost.segments},
        )
    raise ValueError(f"no staff brief for channel {channel!r}")
