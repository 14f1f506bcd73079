"""A self-subscriber's channels: the WhatsApp choice, and their order once confirmed.

A sign-up confirms one contact: an email address (channel ``email``) or a phone number
(``sms``). With a phone number, and where the plan offers it (``[subscriptions] channels``
names ``whatsapp``), the person may also agree to WhatsApp (``"whatsapp": true``, an
unticked box on the form) and say whether it comes before SMS (``"whatsapp_first"``).
"Contact me here first" (``"first"``) puts the confirmed channel at the head of their order.

The WhatsApp opt-in is recorded only when the phone is confirmed (SMS YES or the texted
code): that is what proves the number is theirs, so nothing goes to it on WhatsApp before.
Plain functions: no Flask, no Redis.
"""

from __future__ import annotations

from typing import Any

from broadcaster.domain import whatsapp_consent

# ``whatsapp_opt_in_source`` of an opt-in given on /subscribe or the API and confirmed.
SOURCE = "self-subscription"
FIELDS = ("whatsapp", "whatsapp_first")


def check_whatsapp(
    body: dict[str, Any], offered: bool, channel: str | None
) -> tuple[dict[str, bool], dict[str, list[str]]]:
    """({whatsapp, whatsapp_first}, errors by field) of a sign-up request.

    ``offered``: the plan lets self-subscribers choose WhatsApp; ``channel``: the contact
    the request gives (``"sms"`` for a phone number), None when it gives none or several.
    """
    errors: dict[str, list[str]] = {}
    whatsapp = body.get("whatsapp", False)
    first = body.get("whatsapp_first", False)
    if not isinstance(whatsapp, bool):
        errors["whatsapp"] = ["must be true or false"]
    elif whatsapp and not offered:
        errors["whatsapp"] = ["subscribing on WhatsApp is not offered here"]
    elif whatsapp and channel != "sms":
        errors["whatsapp"] = ["WhatsApp needs a mobile number: give phone (not email)"]
    if not isinstance(first, bool):
        errors["whatsapp_first"] = ["must be true or false"]
    elif first and whatsapp is not True:
        errors["whatsapp_first"] = ['only together with "whatsapp": true']
    return {"whatsapp": whatsapp is True, "whatsapp_first": first is True}, errors


def ordered(
    preference: list[str] | None,
    channel: str,
    first: bool,
    whatsapp: bool = False,
    whatsapp_first: bool = False,
) -> list[str]:
    """A self-subscriber's channel order once ``channel`` is confirmed (plan.md, channel order).

    New people get the channel they confirmed; someone imported with a preference gets it
    added after their own channels, or at the head with ``first``. WhatsApp, when chosen,
    goes right before SMS (``whatsapp_first``) or right after it.
    """
    if not preference:
        base = [channel]
    else:
        rest = [c for c in preference if c != channel]
        if first:
            base = [channel, *rest]
        else:
            base = list(preference) if channel in preference else [*rest, channel]
    if not whatsapp:
        return base
    base = [c for c in base if c != "whatsapp"]
    at = base.index(channel) + (0 if whatsapp_first else 1)
    return [*base[:at], "whatsapp", *base[at:]]


def unchanged(person: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether confirming ``wanted`` would leave this subscriber's channels as they are
    (then the request gets the "subscribed already" note instead of a confirmation)."""
    chosen = list(person.get("channels") or [])
    if wanted["first"] and chosen[:1] != [wanted["channel"]]:
        return False
    if not wanted.get("whatsapp"):
        return True
    return (
        whatsapp_consent.opted_in(person)
        and "whatsapp" not in (person.get("opt_outs") or [])
        and chosen
        == ordered(chosen, wanted["channel"], wanted["first"], True, wanted["whatsapp_first"])
    )
