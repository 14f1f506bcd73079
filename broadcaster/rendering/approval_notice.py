"""The notice that announcements wait for approval: an email and a staff-chat message.

Written for the approvers, in the admin pages' words (English). For one announcement: who
submitted what, its severity, audiences and channels, the text as typed, what customers
will see of it in the plan's default language (banner line, SMS with its segments, email
subject) and the link to its item on the Approvals page at the configured public URL. For
several gathered in one window (a digest): how many, the newest ``DIGEST_SHOWN`` by title,
severity, author and how long each has waited, and the link to the page.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import SEVERITIES
from broadcaster.rendering import clock, isolation, segments
from broadcaster.rendering.customer_view import customer_view
from broadcaster.rendering.messages import SUBJECT_MAX, one_line

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

APPROVALS_PATH = "/admin/approvals"
SUBJECT_PREFIX = "Waiting for approval: "
DIGEST_SHOWN = 20  # the Approvals page's first page: the rest is one click away


def approvals_url(svc: Services, waiting: list[Announcement]) -> str:
    """The Approvals page at the public URL; at the item when there is one."""
    url = svc.renderer.public_url + APPROVALS_PATH
    return f"{url}#{waiting[0].id}" if len(waiting) == 1 else url


def subject(title: str) -> str:
    """The email subject for a title: one line, printable, within the subject limit."""
    # No control characters: a subject can never inject a header.
    title = "".join(ch for ch in one_line(title) if ch.isprintable())
    title, _ = segments.shorten(title, lambda s: len(SUBJECT_PREFIX) + len(s) <= SUBJECT_MAX)
    return SUBJECT_PREFIX + title


def _digest_subject(waiting: list[Announcement]) -> str:
    return f"{len(waiting)} announcements wait for approval"


def context(svc: Services, waiting: list[Announcement]) -> dict[str, Any]:
    """What the notice templates print (``waiting`` newest first).

    What customers will see is rendered on its own: if that fails, the notice still goes
    out with the facts and the link (the failure is logged and counted).
    """
    plan = svc.plan
    now = time.time()
    view = None
    if len(waiting) == 1:
        views = isolation.each(
            svc.redis,
            "approval_notice",
            waiting,
            lambda a: customer_view(svc, a, [plan.default_locale]),
            lambda a: a.id,
        )
        view = views[0][0] if views and views[0] else None
    return {
        "a": waiting[0],
        "waiting": waiting[:DIGEST_SHOWN],
        "count": len(waiting),
        "more": max(0, len(waiting) - DIGEST_SHOWN),
        "waited": {a.id: clock.duration(now - a.created_at) for a in waiting[:DIGEST_SHOWN]},
        "organisation": plan.organisation,
        "submitted": clock.format_time(waiting[0].created_at, "en", plan.timezone),
        "zone_note": clock.zone_note("en", plan.timezone),
        "view": view,
        "link": approvals_url(svc, waiting),
    }


def email(svc: Services, waiting: list[Announcement]) -> dict[str, str]:
    """The notice email's ``subject``, ``text`` and ``html`` (HTML escaped, sandboxed)."""
    ctx = context(svc, waiting)
    env = svc.renderer.env
    name = "approval_notice" if len(waiting) == 1 else "approval_digest"
    return {
        "subject": subject(waiting[0].title) if len(waiting) == 1 else _digest_subject(waiting),
        "text": env.get_template(f"email/{name}.txt").render(ctx),
        "html": env.get_template(f"email/{name}.html").render(ctx),
    }


def chat_event(svc: Services, waiting: list[Announcement]) -> dict[str, Any]:
    """The facts a Slack-format webhook lays out: heading, lines (the link is the post's)."""
    tz = svc.plan.timezone
    if len(waiting) == 1:
        a = waiting[0]
        body = [
            f"Submitted by {a.author} at {clock.format_time(a.created_at, 'en', tz)} "
            f"({clock.zone_name('en', tz)}).",
            f"Audiences: {', '.join(a.audiences)} · Channels: {', '.join(a.channels)}",
            a.body,
        ]
        title = SUBJECT_PREFIX + one_line(a.title)
        return {"severity": a.severity, "title": title, "body": "\n".join(body)}
    now = time.time()
    lines = [
        f"- [{a.severity}] {one_line(a.title)} (by {a.author}, waiting "
        f"{clock.duration(now - a.created_at)})"
        for a in waiting[:DIGEST_SHOWN]
    ]
    if len(waiting) > DIGEST_SHOWN:
        lines.append(f"… and {len(waiting) - DIGEST_SHOWN} more")
    # The heading carries the gravest severity among them.
    top = max(
        waiting, key=lambda a: SEVERITIES.index(a.severity) if a.severity in SEVERITIES else -1
    )
    return {"severity": top.severity, "title": _digest_subject(waiting), "body": "\n".join(lines)}
