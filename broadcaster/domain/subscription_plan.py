"""The ``[subscriptions]`` part of the crisis plan: who may subscribe themselves, and how.

```toml
[subscriptions]
audience = "consumers"          # the audience self-subscribers join (not an internal one)
channels = ["email", "sms"]     # how they may subscribe: email, sms or both (+ whatsapp)
```

``"whatsapp"`` lets people who subscribe with a phone number also agree to WhatsApp (an
explicit choice on the form); it needs ``"sms"`` beside it (the number is confirmed by
SMS), an audience that uses whatsapp, and the plan's ``[whatsapp.templates]`` (only an
approved template may start a WhatsApp conversation): a plan lacking one fails at start-up
naming ``subscriptions.channels``.

Without a ``[subscriptions]`` table nobody can subscribe themselves: ``/subscribe`` says
so and ``POST /api/v1/subscriptions`` answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The channels a person can give us a contact for on a public page and confirm.
SELF_CHANNELS = ("email", "sms")
# Channels a person may add to a confirmed contact: WhatsApp rides on the phone number.
ADDED_CHANNELS = ("whatsapp",)


@dataclass(frozen=True)
class SubscriptionPlan:
    """Self-subscription: the audience people join and the channels they may use."""

    audience: str
    channels: tuple[str, ...] = SELF_CHANNELS

    @property
    def whatsapp(self) -> bool:
        """Whether people subscribing by phone may also choose WhatsApp."""
        return "whatsapp" in self.channels


def parse_subscriptions(
    check: Any, data: dict[str, Any], audiences: dict[str, Any]
) -> SubscriptionPlan | None:
    """Validate ``[subscriptions]`` through the plan's checker; None when the plan has none."""
    if "subscriptions" not in data:
        return None
    raw = check.table(data, "subscriptions")
    if not raw:
        if isinstance(data.get("subscriptions"), dict):
            check.fail("subscriptions.audience", "missing (name the audience people join)")
        return None
    check.known_keys(raw, "subscriptions", ("audience", "channels"))
    name = raw.get("audience")
    audience = audiences.get(name) if isinstance(name, str) else None
    if not isinstance(name, str) or not name:
        check.fail("subscriptions.audience", "must be the name of an audience")
    elif audience is None:
        known = ", ".join(audiences) or "none"
        check.fail("subscriptions.audience", f"unknown audience {name!r} (known: {known})")
    elif audience.internal:
        # Anyone can subscribe: never into an audience whose messages are for our own people.
        check.fail("subscriptions.audience", f"audience {name!r} is internal: not for the public")
    channels = raw.get("channels", list(SELF_CHANNELS))
    allowed = (*SELF_CHANNELS, *ADDED_CHANNELS)
    if (
        not isinstance(channels, list)
        or not any(c in SELF_CHANNELS for c in channels)
        or not all(isinstance(c, str) and c in allowed for c in channels)
    ):
        check.fail(
            "subscriptions.channels",
            f"must be a list of {', '.join(allowed)} with email or sms in it",
        )
        return SubscriptionPlan(audience=str(name or ""))
    if "whatsapp" in channels:
        _check_whatsapp(check, channels, data)
    if audience is not None:
        missing = [c for c in channels if c not in audience.channels]
        if missing:
            check.fail(
                "subscriptions.channels",
                f"audience {name!r} does not use {missing[0]!r} (its channels: "
                f"{', '.join(audience.channels)})",
            )
    return SubscriptionPlan(audience=str(name or ""), channels=tuple(dict.fromkeys(channels)))


def _check_whatsapp(check: Any, channels: list[str], data: dict[str, Any]) -> None:
    """WhatsApp for self-subscribers: confirmed by SMS, started by an approved template."""
    if "sms" not in channels:
        check.fail(
            "subscriptions.channels",
            "'whatsapp' needs 'sms' too: the phone number is confirmed by SMS first",
        )
    whatsapp = data.get("whatsapp")
    templates = whatsapp.get("templates") if isinstance(whatsapp, dict) else None
    if not isinstance(templates, dict) or not templates:
        check.fail(
            "subscriptions.channels",
            "'whatsapp' needs the plan's approved WhatsApp templates "
            "([whatsapp.templates.LOCALE], docs/whatsapp.md)",
        )
