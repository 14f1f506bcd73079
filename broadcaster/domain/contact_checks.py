"""Cheap checks first: the common email address and E.164 number, checked in a few
microseconds, with the full libraries (``email-validator``, ``phonenumbers``) for the rest.

An import of 800,000 people must not wait minutes before the first message can go. Most
rows carry a plain ASCII address and a number written as ``+316…``: for those the answer
is known without the libraries' general machinery, and tests/test_contact_checks.py
checks with Hypothesis that the quick answer is the libraries' answer, the same
normalised value, whenever the quick path gives one. Anything unusual (quotes, Unicode,
IDNA, a national-format number) takes the full path, with its precise reasons.
"""

from __future__ import annotations

import re

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from phonenumbers import PhoneNumber

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+{_LABEL})")
_SPECIAL = frozenset(SPECIAL_USE_DOMAIN_NAMES)
_E164 = re.compile(r"\+([1-9]\d{6,14})")


def plain_email(value: str) -> str | None:
    """``value`` normalised as email-validator would (domain in lower case), if it is a
    plain ASCII address; None means "ask email-validator", not "invalid"."""
    found = _PLAIN_EMAIL.fullmatch(value)
    if found is None or len(value) > 254:
        return None
    local, domain = found.groups()
    domain = domain.lower()
    tld = domain.rsplit(".", 1)[1]
    if (
        len(local) > 64
        or len(domain) > 253
        or "--" in domain  # IDNA (xn--) and other forms email-validator rewrites or refuses
        or not tld[-1].isalpha()  # every top-level domain ends with a letter
        or tld in _SPECIAL
        or any(domain.endswith(f".{name}") for name in _SPECIAL)
    ):
        return None
    return f"{local}@{domain}"


def _may_strip(code: int, national: str) -> bool:
    """Whether phonenumbers would rewrite this national number (a national prefix or a
    carrier code it strips, as Madagascar's 7-digit numbers gain "20"): then parse it."""
    region = phonenumbers.region_code_for_country_code(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    pattern = metadata.national_prefix_for_parsing if metadata else None
    return bool(pattern) and re.match(pattern, national) is not None


def e164_number(value: str) -> PhoneNumber | None:
    """The number ``phonenumbers.parse`` would give for a strict E.164 string
    (``+`` and digits, no leading zero after the country code); None: parse it in full."""
    found = _E164.fullmatch(value)
    if found is None:
        return None
    digits = found.group(1)
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            # A leading zero (Italy) or a too short rest: phonenumbers' own rules apply.
            if len(national) < 2 or national[0] == "0" or _may_strip(code, national):
                return None
            return PhoneNumber(country_code=code, national_number=int(national))
    return None
