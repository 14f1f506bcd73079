"""What a scheduled maintenance's announcements say, per transition and per language.

Each transition (announced, reminder, in progress, extended, completed, ended early,
cancelled) is an announcement whose title starts with the words of its status
("Scheduled maintenance: …", "Maintenance in progress: …"), so short texts never put the
status label before it a second time (``compose_text.mentions``). Its body is the
maintenance's own text with the times, in the plan's zone and each language's format
(``clock.py``). Written in the plan's default language from the maintenance's title and
body, and in every language it has a translation for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broadcaster.rendering.clock import format_time, zone_note
from broadcaster.rendering.i18n import N_, gettext_for

if TYPE_CHECKING:
    from broadcaster.domain.maintenances import Maintenance
    from broadcaster.domain.plan import Plan

# Transition → (announcement status, title, what it says). "extended" keeps the status
# the maintenance is in; its title then is that status's.
TITLES = {
    "scheduled": N_("Scheduled maintenance: %(title)s"),
    "in_progress": N_("Maintenance in progress: %(title)s"),
    "completed": N_("Maintenance completed: %(title)s"),
    "cancelled": N_("Maintenance cancelled: %(title)s"),
}
LINES = {
    "scheduled": N_("Planned from %(start)s until %(end)s."),
    "reminder": N_("Reminder: the maintenance starts at %(start)s and should be over by %(end)s."),
    "in_progress": N_("The maintenance has started and should be over by %(end)s."),
    "extended": N_("The maintenance takes longer than planned: it should now be over by %(end)s."),
    "completed": N_("The maintenance is over: everything works as usual again."),
    "ended_early": N_(
        "The maintenance finished earlier than planned: everything works as usual again."
    ),
    "cancelled": N_("The maintenance planned from %(start)s until %(end)s will not take place."),
}
STATUS_OF = {
    "scheduled": "scheduled",
    "reminder": "scheduled",
    "in_progress": "in_progress",
    "completed": "completed",
    "ended_early": "completed",
    "cancelled": "cancelled",
}


def status_of(kind: str, maintenance: Maintenance) -> str:
    """The announcement status of transition ``kind`` (``extended``: where it stands)."""
    if kind == "extended":
        return "in_progress" if maintenance.state == "in_progress" else "scheduled"
    return STATUS_OF[kind]


def texts(
    kind: str, maintenance: Maintenance, plan: Plan, reason: str | None = None
) -> dict[str, Any]:
    """``title``, ``body`` and ``translations`` of the announcement for transition ``kind``."""
    status = status_of(kind, maintenance)
    source = {plan.default_locale: {"title": maintenance.title, "body": maintenance.body}}
    for locale, words in maintenance.translations.items():
        if locale != plan.default_locale and isinstance(words, dict):
            source[locale] = {"title": words.get("title", ""), "body": words.get("body", "")}
    written = {
        locale: _in(locale, kind, status, words, maintenance, plan.timezone, reason)
        for locale, words in source.items()
    }
    default = written.pop(plan.default_locale)
    return {**default, "translations": written, "status": status}


def _in(
    locale: str,
    kind: str,
    status: str,
    words: dict[str, str],
    maintenance: Maintenance,
    tz: str,
    reason: str | None,
) -> dict[str, str]:
    _ = gettext_for(locale)
    times = {
        "start": format_time(maintenance.starts_at, locale, tz),
        "end": format_time(maintenance.ends_at, locale, tz),
    }
    line = _(LINES[kind], **times)  # a line without times ignores them
    if "%(" in LINES[kind]:
        line = f"{line} {zone_note(locale, tz)}"
    parts = [line]
    if kind == "cancelled" and reason:
        parts.append(reason)
    if kind in ("scheduled", "reminder", "in_progress"):
        parts.append(words["body"])  # what the maintenance is about, once it is news
    return {
        "title": _(TITLES[status], title=words["title"]),
        "body": "\n\n".join(p for p in parts if p),
    }
