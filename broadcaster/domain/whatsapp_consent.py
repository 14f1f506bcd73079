"""WhatsApp's two rules about whom we may message, and how.

- **Opt-in.** WhatsApp requires that people agreed to get our messages there, and that we
  can say when and how. A subscriber carries ``whatsapp_opt_in_at`` (when they agreed) and
  ``whatsapp_opt_in_source`` (where: "signup form", "call centre", "WhatsApp START"); set
  by the subscribers API and CSV import, or by START sent to us on WhatsApp. Nobody without
  one gets WhatsApp: the delivery is recorded as skipped, "no WhatsApp opt-in". STOP on
  WhatsApp is an opt-out like any other (``opt_outs``), and wins over the opt-in.
- **The 24-hour window.** A business may send free text only within 24 hours of the
  person's last message to it; otherwise only an approved template. Each inbound WhatsApp
  message opens the window again (``open_window``); the fan-out asks ``open_among``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import redis

NO_OPT_IN = "no WhatsApp opt-in"
WINDOW = 24 * 3600
# A paced batch may send minutes after it looked: a window about to close counts as closed.
WINDOW_MARGIN = 15 * 60
SOURCE_MAX = 200
CLOCK_SKEW = 300  # an opt-in a few minutes "in the future" is the caller's clock
EARLIEST = 1230768000.0  # 2009-01-01: an older "opt-in" is a wrong date, not consent
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class OptInError(ValueError):
    """An opt-in that cannot be recorded; the message says which field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def _window_key(subscriber_id: str) -> str:
    return f"bc:wa:window:{subscriber_id}"


def opted_in(person: Mapping[str, Any]) -> bool:
    """Whether this subscriber agreed to WhatsApp messages (and it is recorded)."""
    return bool(person.get("whatsapp_opt_in_at"))


def parse_opt_in(at: Any, source: Any, now: float | None = None) -> tuple[float, str]:
    """(epoch seconds, source) from an ISO 8601 time with its zone and a short text.

    Raises OptInError naming the field: a time without a zone, in the future, or a source
    missing, too long or with control characters.
    """
    now = time.time() if now is None else now
    if not isinstance(at, str) or not at.strip():
        raise OptInError("whatsapp_opt_in_at", "give when they agreed, as ISO 8601 with a zone")
    try:
        when = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise OptInError(
            "whatsapp_opt_in_at", "not an ISO 8601 time (e.g. 2026-03-01T09:30:00+01:00)"
        ) from exc
    if when.tzinfo is None:
        raise OptInError("whatsapp_opt_in_at", "give the time zone (e.g. +01:00 or Z)")
    stamp = when.timestamp()
    if stamp > now + CLOCK_SKEW:
        raise OptInError("whatsapp_opt_in_at", "is in the future")
    if stamp < EARLIEST:
        raise OptInError("whatsapp_opt_in_at", "is before WhatsApp existed (2009)")
    if not isinstance(source, str) or not source.strip():
        raise OptInError(
            "whatsapp_opt_in_source", "say how they agreed (e.g. 'signup form', 'call centre')"
        )
    text = " ".join(source.split())
    if len(text) > SOURCE_MAX:
        raise OptInError("whatsapp_opt_in_source", f"at most {SOURCE_MAX} characters")
    if _CONTROL.search(text):
        raise OptInError("whatsapp_opt_in_source", "must not contain control characters")
    return stamp, text


def open_window(r: redis.Redis, subscriber_id: str, at: float | None = None) -> None:
    """A WhatsApp message from this person: free text may answer for 24 hours."""
    at = time.time() if at is None else at
    left = int(at + WINDOW - time.time())
    if left > 0:
        r.set(_window_key(subscriber_id), repr(at), ex=left)


def close_window(r: redis.Redis, subscriber_id: str) -> None:
    """Twilio said the window is closed (error 63016): templates only until they write."""
    r.delete(_window_key(subscriber_id))


def open_among(r: redis.Redis, subscriber_ids: list[str]) -> set[str]:
    """Those whose window stays open for at least WINDOW_MARGIN more."""
    if not subscriber_ids:
        return set()
    cutoff = time.time() + WINDOW_MARGIN - WINDOW
    found = r.mget([_window_key(sid) for sid in subscriber_ids])
    return {
        sid
        for sid, raw in zip(subscriber_ids, found, strict=True)
        if raw is not None and float(raw) > cutoff
    }
