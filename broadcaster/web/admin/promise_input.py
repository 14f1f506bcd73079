"""Compose's "Next update by": a wall-clock time in the plan's zone, proposed from the plan.

The browser's ``<input type="datetime-local">`` sends a time without a zone ("2026-12-02T10:30").
It means the plan's zone (``organisation.timezone``, the zone every page names), whatever
the zone of the lead's laptop. A time the zone skips (clocks going forward) is refused
rather than moved; a time it repeats (clocks going back) is its first occurrence.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from broadcaster.domain.plan import Plan

INPUT_FORMAT = "%Y-%m-%dT%H:%M"
_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")
STEP = 5 * 60  # proposals fall on whole five minutes: "by 10:35", not "by 10:33"


def proposed(plan: Plan, now: float | None = None) -> str:
    """The input's value for the plan's usual promise (``Plan.promise_interval``), or ""."""
    if not plan.promise_interval:
        return ""
    now = time.time() if now is None else now
    due = math.ceil((now + plan.promise_interval) / STEP) * STEP
    return datetime.fromtimestamp(due, ZoneInfo(plan.timezone)).strftime(INPUT_FORMAT)


def parse(value: str, tz: str) -> datetime:
    """The aware time ``value`` names in ``tz``; ValueError with words for a person."""
    text = value.strip()
    if not _SHAPE.fullmatch(text):
        raise ValueError("Enter a date and time, like 2026-12-02T10:30.")
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text} is not a date and time that exists.") from None
    zone = ZoneInfo(tz)
    aware = naive.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise ValueError(f"{text} does not exist in {tz}: the clocks skip it. Pick another time.")
    return aware


def as_input(ts: float, tz: str) -> str:
    """A stored promise as the input shows it again."""
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime(INPUT_FORMAT)
