"""The quick contact checks give the libraries' own answers (domain/contact_checks.py)."""

from __future__ import annotations

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from broadcaster.domain.contact_checks import (
    e164_number,
    e164_parts,
    number_type,
    only_region,
    plain_email,
    type_in_region,
)
from broadcaster.domain.phone_numbers import SMS_TYPES, PhonePolicy
from broadcaster.domain.plan import load_plan
from broadcaster.domain.subscriber_rows import SubscriberRow

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-."
LABEL_CHARS = "abcxyzABC0189-"


def label() -> st.SearchStrategy[str]:
    return st.text(LABEL_CHARS, min_size=1, max_size=12)


emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.text(ATEXT, min_size=1, max_size=70),
    st.lists(label(), min_size=1, max_size=3),
    st.one_of(
        st.sampled_from(["com", "NL", "dk", "se", "c", "test", "local", "123", "x1", "1x"]),
        label(),
    ),
)


@settings(max_examples=3000, deadline=None)
@given(emails)
def test_a_quick_email_answer_is_email_validators_answer(value: str) -> None:
    quick = plain_email(value)
    if quick is None:
        return  # email-validator decides
    assert validate_email(value, check_deliverability=False).normalized == quick


@pytest.mark.parametrize(
    "value",
    [
        "anna@example.com",
        "Anna.Jansen@Example.NL",
        "o'brien+tag@mail.acme.dk",
        "x@b.c",
    ],
)
def test_common_addresses_take_the_quick_path(value: str) -> None:
    assert plain_email(value) == validate_email(value, check_deliverability=False).normalized


@pytest.mark.parametrize(
    "value",
    [
        "a..b@x.com",
        "a@localhost",
        "a@x.test",
        "a@x.123",
        "a@-x.com",
        "a@xn--bcher-kva.com",
        "ä@x.com",
        '"quoted"@x.com',
        "a@x..com",
        ".a@x.com",
        "a@x.com.",
    ],
)
def test_anything_unusual_goes_to_the_library(value: str) -> None:
    assert plain_email(value) is None
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        pass  # refused there, with its reason


numbers = st.builds(
    lambda code, rest: f"+{code}{rest}",
    st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
    st.text("0123456789", min_size=1, max_size=14),
)


@settings(max_examples=5000, deadline=None)
@given(numbers)
def test_a_quick_number_is_what_phonenumbers_parses(value: str) -> None:
    quick = e164_number(value)
    if quick is None:
        return
    parsed = phonenumbers.parse(value, None)
    assert (quick.country_code, quick.national_number) == (
        parsed.country_code,
        parsed.national_number,
    )
    assert bool(quick.italian_leading_zero) == bool(parsed.italian_leading_zero)
    assert phonenumbers.number_type(quick) == phonenumbers.number_type(parsed)
    assert phonenumbers.is_valid_number(quick) == phonenumbers.is_valid_number(parsed)
    assert phonenumbers.region_code_for_number(quick) == phonenumbers.region_code_for_number(parsed)


# Numbers near the metadata's own examples (valid ones of every type), and anything at all.
_EXAMPLES = [
    example
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    for kind in range(12)
    if (example := phonenumbers.example_number_for_type(region, kind)) is not None
]
near_examples = st.builds(
    lambda example, tail, cut: phonenumbers.PhoneNumber(
        country_code=example.country_code,
        national_number=int(str(example.national_number)[:-cut] + tail[:cut] or "0"),
        italian_leading_zero=example.italian_leading_zero,
        number_of_leading_zeros=example.number_of_leading_zeros,
    ),
    st.sampled_from(_EXAMPLES),
    st.text("0123456789", min_size=4, max_size=4),
    st.integers(1, 4),
)
any_numbers = st.builds(
    lambda code, national: phonenumbers.PhoneNumber(country_code=code, national_number=national),
    st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
    st.integers(0, 10**15),
)


@settings(max_examples=5000, deadline=None)
@given(st.one_of(near_examples, any_numbers))
def test_the_number_type_is_phonenumbers_own(number: phonenumbers.PhoneNumber) -> None:
    assert number_type(number) == phonenumbers.number_type(number)


def test_the_number_types_of_every_example_are_phonenumbers_own() -> None:
    kinds = {number_type(example) for example in _EXAMPLES}
    assert {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.TOLL_FREE} <= kinds
    assert all(number_type(e) == phonenumbers.number_type(e) for e in _EXAMPLES)


@pytest.mark.parametrize("value", ["0612345678", "+31 6 12345678", "+39 06 1234 5678", "+3906123"])
def test_other_forms_go_to_phonenumbers(value: str) -> None:
    assert e164_number(value.replace(" ", "") if value.startswith("+39") else value) is None


def reference_check(value: str, policy: PhonePolicy) -> str:
    """The phone policy as written before the quick path: phonenumbers all the way."""
    try:
        number = phonenumbers.parse(value, policy.default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"{value!r} is not a valid phone number")
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    if region == "001":
        raise ValidationError(f"{formatted} satellite")
    if phonenumbers.number_type(number) not in SMS_TYPES:
        raise ValidationError(f"{formatted} type")
    return formatted


@settings(max_examples=3000, deadline=None)
@given(numbers)
def test_a_number_of_a_one_region_code_is_typed_without_a_phone_number_object(value: str) -> None:
    parts = e164_parts(value)
    if parts is None or only_region(parts[0]) is None:
        return
    code, national = parts
    parsed = phonenumbers.parse(value, None)
    assert only_region(code) == phonenumbers.region_code_for_number(parsed)
    assert national == phonenumbers.national_significant_number(parsed)
    assert type_in_region(code, only_region(code), national) == phonenumbers.number_type(parsed)


@settings(max_examples=3000, deadline=None)
@given(numbers)
def test_the_phone_policy_gives_the_same_answers_as_before(value: str) -> None:
    policy = PhonePolicy("NL")
    try:
        expected = reference_check(value, policy)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as caught:
            policy.check(value)
        # The same verdict, for the same reason (the numbers named alike).
        reason = str(exc).split(" ")[-1]
        assert {"satellite": "satellite", "type": "mobile"}.get(reason, "") in str(caught.value)
        return
    assert policy.check(value) == expected


ROW_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["anna@example.com", "Bo@Example.NL", "broken@", "a@x.test", "", "  "]),
    st.sampled_from(["+31612345678", "0612345678", "+31201234567", "+8816", "+46701234567"]),
    st.text(max_size=12),
    st.integers(),
    st.lists(st.sampled_from(["consumers", "business", "martians", "email", "sms", "fax"])),
)
ROWS = st.dictionaries(
    st.sampled_from(["external_id", "email", "phone", "locale", "audiences", "channels", "x"]),
    ROW_VALUES,
    max_size=6,
)


@settings(max_examples=1500, deadline=None)
@given(ROWS)
def test_the_quick_row_check_is_the_schemas(row) -> None:
    """Whatever a row holds, load_row accepts what load accepts, equal, and refuses the rest
    with load's own reasons."""
    schema = SubscriberRow(load_plan(None))
    try:
        expected = schema.load(row)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as caught:
            schema.load_row(row)
        assert caught.value.messages == exc.messages
        return
    assert schema.load_row(row) == expected
