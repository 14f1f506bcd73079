"""How a correction says which update it corrects: "Corrects the update of 09:10".

The same words on every surface (email, status page, banner), the time in the plan's zone
as the reader's language writes it (``clock.py``). Corrections stored before the corrected
update's time was kept say only that they correct an earlier message.
"""

from __future__ import annotations

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import Plan
from broadcaster.rendering.clock import format_time
from broadcaster.rendering.i18n import N_, gettext_for

# Marked for extraction: ``_()`` of a name would not be found by ``pybabel extract``.
CORRECTS_UPDATE_OF = N_("Corrects the update of %(time)s")
CORRECTS_EARLIER = N_("This corrects our earlier message")


def correction_note(
    plan: Plan, announcement: Announcement, locale: str, *, now: float | None = None
) -> str | None:
    """The line naming the update ``announcement`` corrects, in ``locale``; None if it
    corrects nothing."""
    if not announcement.corrects:
        return None
    _ = gettext_for(locale)
    when = announcement.corrects_published_at
    if when is None:
        return _(CORRECTS_EARLIER)
    return _(CORRECTS_UPDATE_OF, time=format_time(when, locale, plan.timezone, now=now))
