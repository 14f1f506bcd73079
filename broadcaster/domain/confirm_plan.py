"""An audience's ``confirm`` setting: ask its people to confirm, escalate when they do not.

```toml
[audiences.medical]
channels = ["email", "sms"]
confirm = { within_minutes = 15, escalate = ["sms", "voice"] }
```

Every announcement to the audience (except an all-clear) asks for a reply; whoever has not
confirmed ``within_minutes`` after being asked gets the next channel of ``escalate`` (in
their own channel order where they chose one), then the next, until none is left: then they
are *unreachable*, for a person to call (delivery/escalation.py, docs/plan.md#confirm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels import PERSONAL

MAX_MINUTES = 24 * 60  # a day: longer is no longer an escalation, it is a different message


@dataclass(frozen=True)
class ConfirmPlan:
    """How long an audience's people have to confirm, and the channels that follow."""

    within_minutes: int
    escalate: tuple[str, ...] = ()


def parse_confirm(check: Any, raw: Any, key: str) -> ConfirmPlan | None:
    """Validate ``confirm = {within_minutes, escalate}`` through the plan's checker."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        check.fail(key, 'must be a table like { within_minutes = 15, escalate = ["sms"] }')
        return None
    check.known_keys(raw, key, ("within_minutes", "escalate"))
    minutes = raw.get("within_minutes")
    if minutes is None:
        check.fail(f"{key}.within_minutes", "missing (minutes people have to confirm)")
        minutes = 0
    elif (
        not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_MINUTES
    ):
        check.fail(f"{key}.within_minutes", f"must be a whole number from 1 to {MAX_MINUTES}")
        minutes = 0
    escalate = raw.get("escalate", [])
    personal = ", ".join(PERSONAL)
    if not isinstance(escalate, list) or not all(isinstance(c, str) for c in escalate):
        check.fail(f"{key}.escalate", f"must be a list of personal channels ({personal})")
        escalate = []
    unknown = [c for c in escalate if c not in PERSONAL]
    if unknown:
        check.fail(
            f"{key}.escalate",
            f"{unknown[0]!r} is not a personal channel (one of: {personal})",
        )
    repeated = sorted({c for c in escalate if escalate.count(c) > 1})
    if repeated:
        # Nobody is contacted twice on one channel: a repeat would silently do nothing.
        check.fail(f"{key}.escalate", f"names {repeated[0]!r} twice")
    if not minutes or unknown or repeated:
        return None
    return ConfirmPlan(within_minutes=minutes, escalate=tuple(escalate))
