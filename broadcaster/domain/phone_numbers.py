"""Which phone numbers may be a subscriber's: numbers that can receive an SMS from us.

A number must be valid (``phonenumbers``), of type MOBILE or FIXED_LINE_OR_MOBILE (some
countries, e.g. the US and Denmark, do not tell the two apart), geographic (not a satellite
or international-network number under +8xx), in the plan's ``[policy] sms_countries`` if
it lists any, and not one of our own sender numbers. Every refusal says why, so a helpdesk
agent fixing an import knows what to ask the person.

Everything else is refused, including VOIP, PAGER, PERSONAL_NUMBER and UNKNOWN: texting
them fails or costs money (a "personal number" forwards at premium rates), and an alert
that silently goes nowhere is worse than a clear "give a mobile number" at sign-up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import phonenumbers
from marshmallow import ValidationError
from phonenumbers import PhoneNumber, PhoneNumberType

from broadcaster.domain.contact_checks import (
    e164_parts,
    number_type,
    only_region,
    type_in_region,
)

# Types an SMS reaches.
SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
REFUSED_TYPES: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "a landline, which cannot receive SMS",
    PhoneNumberType.TOLL_FREE: "a toll-free number, which cannot receive SMS",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.VOIP: "a VoIP number, which may not receive SMS",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number, often charged extra",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.UAN: "a universal access (UAN) number of a company",
    PhoneNumberType.VOICEMAIL: "a voicemail access number",
    PhoneNumberType.UNKNOWN: "a number of unknown type",
}
# Non-geographic numbers (+870 Inmarsat, +881 satellite phones, +882/+883 international
# networks): phonenumbers files them under this "region".
NON_GEOGRAPHIC = "001"
# Settings whose value is one of our sender numbers (Twilio writes "whatsapp:+31…").
SENDER_SETTINGS = ("TWILIO_FROM", "TWILIO_VOICE_FROM", "TWILIO_WHATSAPP_FROM", "SENDER_NUMBERS")
_SPLIT = re.compile(r"[,;]")


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_phone(value: str, region: str | None) -> phonenumbers.PhoneNumber:
    """A valid phone number, or ValidationError with the reason."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (write it with a country code, e.g. +31…)"
        raise ValidationError(f"not a phone number: {exc}{hint}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"{value!r} is not a valid phone number")
    return number


def normalise_phone(value: str, region: str | None) -> str:
    """E.164 form of a valid phone number (any type), or ValidationError with the reason."""
    return e164(parse_phone(value, region))


def sender_numbers(config: Mapping[str, object]) -> frozenset[str]:
    """Our own sender numbers (E.164 where they parse) from the settings that name them."""
    found: set[str] = set()
    for setting in SENDER_SETTINGS:
        for raw in _SPLIT.split(str(config.get(setting) or "")):
            raw = raw.removeprefix("whatsapp:").strip()
            if not raw:
                continue
            try:
                found.add(normalise_phone(raw, None))
            except ValidationError:
                found.add(raw)  # a short code or alphanumeric sender: compared as written
    return frozenset(found)


def parse_sms_countries(value: object) -> tuple[tuple[str, ...], str | None]:
    """``[policy] sms_countries`` → (region codes, problem or None)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return (), 'must be a list of ISO country codes, e.g. ["NL", "DK", "SE"]'
    unknown = [v for v in value if v not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        return (), (
            f"unknown country code {unknown[0]!r} (ISO 3166 alpha-2 in capitals, e.g. 'NL')"
        )
    return tuple(dict.fromkeys(value)), None


@dataclass(frozen=True)
class PhonePolicy:
    """What a subscriber's phone must be: see the module docstring."""

    default_region: str | None = None
    countries: tuple[str, ...] = ()  # empty: any country
    senders: frozenset[str] = frozenset()

    def check(self, value: str) -> str:
        """E.164 form of ``value`` if a subscriber may have it, else ValidationError (why)."""
        # A plain +… number skips phonenumbers' general parser (contact_checks.py); its
        # type is asked once, and validity only when the type is unknown (they agree).
        parts = e164_parts(value)
        if parts is None:
            number = parse_phone(value, self.default_region)
            code, formatted = number.country_code, e164(number)
            region, kind = phonenumbers.region_code_for_number(number), number_type(number)
        else:
            code, national = parts
            formatted = f"+{code}{national}"
            # A calling code of one region (most) needs no PhoneNumber made: a fifth of a
            # row's check in an import. Its region and type come from the digits.
            region = only_region(code)
            if region is None:
                region = phonenumbers.region_code_for_number(_number(code, national))
            kind = type_in_region(code, region, national)
            if kind == PhoneNumberType.UNKNOWN and not phonenumbers.is_valid_number(
                _number(code, national)
            ):
                raise ValidationError(f"{value!r} is not a valid phone number")
        if region == NON_GEOGRAPHIC:
            raise ValidationError(
                f"{formatted} is a satellite or international-network number "
                f"(+{code}): give a mobile number"
            )
        if kind not in SMS_TYPES:
            reason = REFUSED_TYPES.get(kind, "not a mobile number")
            raise ValidationError(f"{formatted} is {reason}: give a mobile number")
        if self.countries and region not in self.countries:
            raise ValidationError(
                f"{formatted} is a number from {region}; SMS goes only to numbers from "
                f"{', '.join(self.countries)} (policy.sms_countries)"
            )
        if formatted in self.senders:
            raise ValidationError(f"{formatted} is our own sender number, not a subscriber's")
        return formatted


def _number(code: int, national: str) -> PhoneNumber:
    return PhoneNumber(country_code=code, national_number=int(national))
