"""The notice that an announcement waits for approval: an email and a staff-chat message.

Written for the approvers, in the admin pages' words (English): who submitted what, its
severity, audiences and channels, the text as typed, what customers will see of it in the
plan's default language (banner line, SMS with its segments, email subject), and the link
to the Approvals page at the configured public URL.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from broadcaster.domain.announcement import Announcement
from broadcaster.rendering import clock, isolation, segments
from broadcaster.rendering.customer_view import customer_view
from broadcaster.rendering.messages import SUBJECT_MAX, one_line

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

log = logging.getLogger(__name__)

APPROVALS_PATH = "/admin/approvals"
SUBJECT_PREFIX = "Waiting for approval: "


def approvals_url(svc: Services, announcement: Announcement) -> str:
    """The Approvals page at the public URL, at this announcement's item."""
    return f"{svc.renderer.public_url}{APPROVALS_PATH}#{announcement.id}"


def subject(title: str) -> str:
    """The email subject for a title: one line, printable, within the subject limit."""
    # No control characters: a subject can never inject a header.
    title = "".join(ch for ch in one_line(title) if ch.isprintable())
    title, _ = segments.shorten(title, lambda s: len(SUBJECT_PREFIX) + len(s) <= SUBJECT_MAX)
    return SUBJECT_PREFIX + title


def context(svc: Services, announcement: Announcement) -> dict[str, Any]:
    """What the notice templates print.

    What customers will see is rendered on its own: if that fails, the notice still goes
    out with the facts and the link (the failure is logged and counted).
    """
    plan = svc.plan
    views = isolation.each(
        svc.redis,
        "approval_notice",
        [announcement],
        lambda a: customer_view(svc, a, [plan.default_locale]),
        lambda a: a.id,
    )
    return {
        "a": announcement,
        "organisation": plan.organisation,
        "submitted": clock.format_time(announcement.created_at, "en", plan.timezone),
        "zone_note": clock.zone_note("en", plan.timezone),
        "view": views[0][0] if views and views[0] else None,
        "link": approvals_url(svc, announcement),
    }


def email(svc: Services, announcement: Announcement) -> dict[str, str]:
    """The notice email's ``subject``, ``text`` and ``html`` (HTML escaped, sandboxed)."""
    ctx = context(svc, announcement)
    env = svc.renderer.env
    return {
        "subject": subject(announcement.title),
        "text": env.get_template("email/approval_notice.txt").render(ctx),
        "html": env.get_template("email/approval_notice.html").render(ctx),
    }


def chat_event(svc: Services, announcement: Announcement) -> dict[str, Any]:
    """The facts a Slack-format webhook lays out: heading, lines (the link is the post's)."""
    body = [
        f"Submitted by {announcement.author} at "
        f"{clock.format_time(announcement.created_at, 'en', svc.plan.timezone)} "
        f"({clock.zone_name('en', svc.plan.timezone)}).",
        f"Audiences: {', '.join(announcement.audiences)} · "
        f"Channels: {', '.join(announcement.channels)}",
        announcement.body,
    ]
    return {
        "id": announcement.id,
        "incident_id": announcement.incident_id,
        "severity": announcement.severity,
        "title": SUBJECT_PREFIX + one_line(announcement.title),
        "body": "\n".join(body),
    }
