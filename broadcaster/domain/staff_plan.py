"""The ``[staff]`` part of the crisis plan: who is told first, how long before customers,
and what agents must not promise.

```toml
[staff]
audiences = ["staff"]        # internal audiences (internal = true) briefed first
lead_seconds = 30            # 0-60: the brief is this far ahead of the customers
channels = ["email", "sms", "webhook"]   # optional: default, every one of these
do_not_promise = [
  "A time when it will work again",
  { en = "Compensation", nl = "Een vergoeding" },
]
```

Without a ``[staff]`` table nobody is briefed first and customers are told at once, as
before. Holding statements (pre-approved, from monitoring) never wait for the lead, but
staff are still told first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEAD_MAX = 60  # seconds: a brief longer ahead keeps customers waiting in a crisis
LEAD_DEFAULT = 30
# The channels a brief travels on: the people's own (email, SMS) and internal webhooks.
STAFF_CHANNELS = ("email", "sms", "webhook")
DO_NOT_PROMISE_MAX = 20  # lines: a brief is read in seconds, not studied


@dataclass(frozen=True)
class StaffPlan:
    """Staff audiences briefed before every customer-facing announcement."""

    audiences: tuple[str, ...]
    lead_seconds: int = LEAD_DEFAULT
    channels: tuple[str, ...] = STAFF_CHANNELS
    # One line per entry: locale → text; "" is the text for every locale (like route needs).
    do_not_promise: tuple[dict[str, str], ...] = ()

    def lead_for(self, preapproved: bool, cap: float | None = None) -> int:
        """Seconds between the brief and the customers: none for a holding statement;
        at most ``cap`` (the ``STAFF_LEAD_MAX`` setting)."""
        if preapproved:
            return 0
        return self.lead_seconds if cap is None else max(0, min(self.lead_seconds, int(cap)))

    def do_not_promise_in(self, locale: str, default_locale: str) -> list[str]:
        """The "what not to promise" lines in ``locale`` (else the default locale's)."""
        return [
            line.get(locale) or line.get(default_locale) or line.get("", "")
            for line in self.do_not_promise
        ]


def parse_staff(
    check: Any,
    data: dict[str, Any],
    audiences: dict[str, Any],
    locales: tuple[str, ...],
    default_locale: str,
) -> StaffPlan | None:
    """Validate ``[staff]`` through the plan's checker; None when the plan has none."""
    if "staff" not in data:
        return None
    raw = check.table(data, "staff")
    if not raw:
        if isinstance(data.get("staff"), dict):
            check.fail("staff.audiences", "missing (name the internal audiences to brief)")
        return None
    check.known_keys(raw, "staff", ("audiences", "lead_seconds", "channels", "do_not_promise"))
    names = raw.get("audiences")
    chosen: list[str] = []
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        check.fail("staff.audiences", "must be a non-empty list of audience names")
    else:
        for name in names:
            audience = audiences.get(name)
            if audience is None:
                check.fail("staff.audiences", f"unknown audience {name!r}")
            elif not audience.internal:
                # A brief names what not to promise: it must never reach the public.
                check.fail(
                    "staff.audiences",
                    f"audience {name!r} is not internal (mark it internal = true)",
                )
            elif name not in chosen:
                chosen.append(name)
    lead = raw.get("lead_seconds", LEAD_DEFAULT)
    if not isinstance(lead, int) or isinstance(lead, bool) or not 0 <= lead <= LEAD_MAX:
        check.fail("staff.lead_seconds", f"must be a whole number of seconds from 0 to {LEAD_MAX}")
        lead = LEAD_DEFAULT
    channels = raw.get("channels", list(STAFF_CHANNELS))
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) and c in STAFF_CHANNELS for c in channels)
    ):
        check.fail("staff.channels", f"must be a non-empty list of {', '.join(STAFF_CHANNELS)}")
        channels = list(STAFF_CHANNELS)
    lines = _do_not_promise(check, raw.get("do_not_promise", []), locales, default_locale)
    return StaffPlan(
        audiences=tuple(chosen),
        lead_seconds=lead,
        channels=tuple(dict.fromkeys(channels)),
        do_not_promise=lines,
    )


def _do_not_promise(
    check: Any, raw: Any, locales: tuple[str, ...], default_locale: str
) -> tuple[dict[str, str], ...]:
    key = "staff.do_not_promise"
    if not isinstance(raw, list):
        check.fail(key, "must be a list of texts or tables of locale = text")
        return ()
    if len(raw) > DO_NOT_PROMISE_MAX:
        check.fail(key, f"at most {DO_NOT_PROMISE_MAX} lines")
    lines = []
    for i, entry in enumerate(raw[:DO_NOT_PROMISE_MAX]):
        where = f"{key}[{i}]"
        if isinstance(entry, str) and entry.strip():
            lines.append({"": check.line(entry, where)})
        elif (
            isinstance(entry, dict)
            and entry
            and all(isinstance(v, str) and v.strip() for v in entry.values())
        ):
            texts = {k: check.line(v, f"{where}.{k}") for k, v in entry.items()}
            if default_locale not in texts:
                check.fail(where, f"needs a text for the default locale {default_locale!r}")
            unknown = [k for k in texts if k not in locales]
            if unknown:
                check.fail(where, f"unknown locale {unknown[0]!r} (plan has: {', '.join(locales)})")
            lines.append(texts)
        else:
            check.fail(where, "must be text or a table of locale = text")
    return tuple(lines)
