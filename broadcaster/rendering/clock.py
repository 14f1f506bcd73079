"""One clock: every time a person reads, in the plan's time zone and the reader's language.

Messages, the status page, the agent brief and the admin pages all format times here: to
the minute (never seconds), in the plan's ``organisation.timezone``, in the local format of
the language (Babel/CLDR). A time today is only a time ("09:14", "9:14 AM"); another day
adds the date, and another year the year. The zone is not written after each time: a
page or message names it once (``zone_name``, ``zone_note``).

Machine-readable places (JSON, feeds, ``<time datetime=…>``) stay ISO 8601 UTC: ``iso``.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import (
    format_date,
    format_skeleton,
    get_datetime_format,
    get_timezone_gmt,
    get_timezone_name,
)
from babel.dates import format_time as babel_format_time
from markupsafe import Markup

from broadcaster.rendering.i18n import N_, gettext_for, resolve

# CLDR puts no-break spaces in times ("9:14\u202fAM"); they are not in GSM-7 and would
# switch an SMS carrying a holding statement to UCS-2.
_PLAIN_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})
ZONE_NOTE = N_("All times in %(zone)s.")


def iso(ts: float) -> str:
    """``ts`` as ISO 8601 UTC to the second (``2026-12-02T08:14:40Z``): for machines."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(value: float | int | str | None) -> float | None:
    """Unix seconds from a number, a numeric string or an ISO 8601 string; None if none."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        return number if math.isfinite(number) else None  # "nan" is a number to float()
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def format_time(ts: float, locale: str, tz: str, *, now: float | None = None) -> str:
    """``ts`` (Unix seconds) in ``tz`` as ``locale`` writes it, to the minute.

    Only the time when ``ts`` falls on today's date in ``tz`` (``now``, default the current
    time); otherwise date and time, with the year only when it is not this year. Unknown
    locales format as English, like the text ``gettext_for`` gives them.
    """
    today = datetime.fromtimestamp(time.time() if now is None else now, ZoneInfo(tz)).date()
    return _format(int(ts // 60), resolve(locale), tz, today)


# Babel takes 0.1–0.3 ms a time; a status page or audit log shows hundreds of the same
# minutes, render after render. The text depends only on these four keys.
@lru_cache(maxsize=8192)
def _format(minute: int, language: str, tz: str, today: date) -> str:
    when = datetime.fromtimestamp(minute * 60, ZoneInfo(tz))
    clock = babel_format_time(when, format="short", locale=language)  # short: no seconds
    if when.date() == today:
        text = clock
    else:
        if when.year == today.year:
            day = format_skeleton("MMMd", when, locale=language)
        else:
            day = format_date(when, format="medium", locale=language)
        # The locale's own way of joining a date and a time ("{1}, {0}" in en and nl).
        pattern = get_datetime_format("medium", locale=language).replace("'", "")
        text = pattern.replace("{1}", day).replace("{0}", clock)
    return text.translate(_PLAIN_SPACES)


@lru_cache(maxsize=64)
def zone_name(locale: str, tz: str) -> str:
    """The zone as ``locale`` names it, once per page: "Central European Time".

    CLDR's generic name (right in summer and winter); zones without one (UTC, Etc/…) get
    their specific name ("Coordinated Universal Time") rather than Babel's "GMT+00:00".
    Cached: a plan has one zone, and CLDR names do not change while we run.
    """
    language = resolve(locale)
    now = datetime.now(ZoneInfo(tz))
    generic = get_timezone_name(now, "long", zone_variant="generic", locale=language)
    if generic == get_timezone_gmt(now, "long", locale=language):
        generic = get_timezone_name(now, "long", locale=language)
    return generic.translate(_PLAIN_SPACES)


def zone_note(locale: str, tz: str) -> str:
    """The line that names the zone for a whole page or message: "All times in …"."""
    return gettext_for(locale)(ZONE_NOTE, zone=zone_name(locale, tz))


def format_value(value: float | str | None, locale: str, tz: str) -> str:
    """``format_time`` of what ``parse`` reads (stored numbers, ISO strings); "" for none."""
    ts = parse(value)
    return format_time(ts, locale, tz) if ts else ""  # 0: how stored records say "never"


def time_element(value: float | str | None, locale: str, tz: str) -> Markup:
    """``<time datetime="ISO 8601 UTC">local text</time>`` for HTML; "—" without a time."""
    ts = parse(value)
    if not ts:
        return Markup("—")
    text = format_time(ts, locale, tz)
    return Markup('<time datetime="{}">{}</time>').format(iso(ts), text)


def duration(seconds: float) -> str:
    """A span of time as the admin pages say it, to the minute: "12 min", "2 h 5 min".

    Coarser as it grows ("3 d 4 h"): how long something waited, not a stopwatch. Under a
    minute is "under 1 min"; a negative span (clocks of two machines) counts as none.
    """
    minutes = max(0, int(seconds // 60))
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
