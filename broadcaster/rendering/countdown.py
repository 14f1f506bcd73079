"""The time left until a promised update, as the admin pages show it and update it.

``static/admin/countdown.js`` writes the same words in the browser as the minutes pass, so
the text must follow the same rules here and there: to the minute, "in less than a minute"
at the end, then how long overdue.
"""

from __future__ import annotations

import math
import time

from markupsafe import Markup

from broadcaster.rendering.clock import iso


def remaining(deadline: float, now: float | None = None) -> str:
    """ "in 25 min", "in 1 h 5 min", "in less than a minute"; "overdue", "5 min overdue"."""
    seconds = deadline - (time.time() if now is None else now)
    if 0 < seconds < 60:
        return "in less than a minute"
    minutes = math.ceil(seconds / 60) if seconds > 0 else math.floor(-seconds / 60)
    if seconds <= 0 and minutes == 0:
        return "overdue"
    text = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    return f"in {text}" if seconds > 0 else f"{text} overdue"


def overdue(deadline: float, now: float | None = None) -> bool:
    return deadline <= (time.time() if now is None else now)


def countdown(deadline: float, now: float | None = None) -> Markup:
    """``<time class="countdown" datetime=…>in 25 min</time>`` that countdown.js keeps current."""
    late = overdue(deadline, now)
    return Markup('<time class="countdown{}" datetime="{}">{}</time>').format(
        " overdue" if late else "", iso(deadline), remaining(deadline, now)
    )
