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

import functools
import re
from typing import Any

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberDesc, PhoneNumberType

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+{_LABEL})")
_SPECIAL = frozenset(SPECIAL_USE_DOMAIN_NAMES)
# str.endswith with a tuple: one C call, rather than a generator over the names per address.
_SPECIAL_SUFFIXES = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)
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
        or domain.endswith(_SPECIAL_SUFFIXES)
    ):
        return None
    return f"{local}@{domain}"


@functools.lru_cache(maxsize=1024)  # one per country calling code
def _national_prefix(code: int) -> re.Pattern[str] | None:
    region = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    pattern = metadata.national_prefix_for_parsing if metadata else None
    return re.compile(pattern) if pattern else None


def _may_strip(code: int, national: str) -> bool:
    """Whether phonenumbers would rewrite this national number (a national prefix or a
    carrier code it strips, as Madagascar's 7-digit numbers gain "20"): then parse it."""
    pattern = _national_prefix(code)
    return pattern is not None and pattern.match(national) is not None


def e164_parts(value: str) -> tuple[int, str] | None:
    """(country code, national number) as ``phonenumbers.parse`` would read a strict
    E.164 string (``+`` and digits, no leading zero after the country code); None: parse
    it in full."""
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
            return code, national
    return None


def e164_number(value: str) -> PhoneNumber | None:
    """The number ``phonenumbers.parse`` would give for a strict E.164 string; None: parse
    it in full (``e164_parts``)."""
    parts = e164_parts(value)
    if parts is None:
        return None
    return PhoneNumber(country_code=parts[0], national_number=int(parts[1]))


@functools.lru_cache(maxsize=1024)  # one per country calling code
def only_region(code: int) -> str | None:
    """The region of a calling code that has only one (+31: NL), else None (+1, +44, +7:
    which one takes the number's own digits, phonenumbers' ``region_code_for_number``)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    return regions[0] if len(regions) == 1 else None


# A number's type, as ``phonenumbers.number_type`` finds it, in the same order of checks,
# with each region's patterns compiled once and its possible lengths as sets. The library
# looks every pattern up in ``re``'s cache per check: two thirds of an import row's phone
# time. Tested against the library with Hypothesis (tests/test_contact_checks.py).
_TYPE_ORDER = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)
_Desc = tuple[frozenset[int], "re.Pattern[str] | None"] | None


def _desc(desc: PhoneNumberDesc | None) -> _Desc:
    if desc is None:
        return None
    pattern = desc.national_number_pattern
    return frozenset(desc.possible_length or ()), re.compile(pattern) if pattern else None


def _matches(number: str, desc: _Desc) -> bool:
    """``phonenumbers``' ``_is_number_matching_desc`` on a compiled description."""
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(number) not in lengths:
        return False
    return pattern is not None and pattern.fullmatch(number) is not None


@functools.lru_cache(maxsize=1024)  # bounded by the metadata: ~250 regions and codes
def _compiled(country_code: int, region: str | None) -> tuple[Any, ...] | None:
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return None
    return (
        _desc(metadata.general_desc),
        tuple((_desc(getattr(metadata, name)), kind) for name, kind in _TYPE_ORDER),
        _desc(metadata.fixed_line),
        _desc(metadata.mobile),
        bool(metadata.same_mobile_and_fixed_line_pattern),
    )


def number_type(number: PhoneNumber) -> int:
    """``phonenumbers.number_type(number)``, with the metadata's patterns compiled once."""
    region = phonenumbers.region_code_for_number(number)
    national = phonenumbers.national_significant_number(number)
    return type_in_region(number.country_code, region, national)


def type_in_region(code: int, region: str | None, national: str) -> int:
    """``number_type`` of the number with this calling code and national significant
    number, whose region is ``region`` (``region_code_for_number``)."""
    compiled = _compiled(code, region)
    if compiled is None:
        return PhoneNumberType.UNKNOWN
    general, others, fixed_line, mobile, same = compiled
    if not _matches(national, general):
        return PhoneNumberType.UNKNOWN
    for desc, kind in others:
        if _matches(national, desc):
            return kind
    if _matches(national, fixed_line):
        if same or _matches(national, mobile):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not same and _matches(national, mobile):
        return PhoneNumberType.MOBILE
    return PhoneNumberType.UNKNOWN
